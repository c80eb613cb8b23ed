// Package inputerr is the error every input check in the core returns: it
// names the input as the person who wrote it knows it (a job variable such
// as VM_CPU_REQUEST, or a runner flag such as --max-cpu), the value, and the
// rule the value broke.
package inputerr

import (
	"errors"
	"fmt"
)

// Error is a refused input value.
type Error struct {
	// Name is the input as its author writes it: "VM_CPU_REQUEST",
	// "--default-image", "CI_JOB_ID".
	Name string
	// Value is the refused value, shown quoted. Never a secret.
	Value string
	// Rule says what a valid value looks like or which limit was exceeded.
	Rule string
}

// New returns an *Error; rule is formatted with args like fmt.Sprintf.
func New(name, value, rule string, args ...any) *Error {
	return &Error{Name: name, Value: value, Rule: fmt.Sprintf(rule, args...)}
}

// Error formats as `NAME "value": rule`, the same shape plugins use for
// their InvalidArgument errors (pluginapi.InvalidInput).
func (e *Error) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Name, e.Value, e.Rule)
}

// Is reports whether err is, or wraps, an *Error (possibly inside an
// errors.Join).
func Is(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
