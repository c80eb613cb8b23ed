package pluginapi

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// InvalidInput returns the error a plugin gives for a request field it
// refuses. The message names the field, the value and the rule, e.g.
//
//	InvalidInput("username", req.Username, "must match %s", pattern)
//
// The core shows it to the user as is. Never pass a secret as value.
//
// The error crosses the plugin boundary as a gRPC InvalidArgument status,
// also when the plugin wraps it (fmt.Errorf("render: %w", err)); its Error
// is the plain message, so a wrapped message reads "render: field ...".
func InvalidInput(field, value, rule string, args ...any) error {
	return &invalidInputError{msg: fmt.Sprintf("%s %q: %s", field, value, fmt.Sprintf(rule, args...))}
}

// invalidInputError is a refused request field.
type invalidInputError struct{ msg string }

func (e *invalidInputError) Error() string { return e.msg }

// GRPCStatus lets gRPC (and errors.As through wrappers) see the code.
func (e *invalidInputError) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.msg)
}

// IsInvalidInput reports whether err is a refusal of the request's input (as
// opposed to a plugin or transport failure).
func IsInvalidInput(err error) bool {
	return status.Code(err) == codes.InvalidArgument
}

// ErrorMessage returns the human part of an error that crossed the plugin
// boundary, without gRPC's "rpc error: code = ... desc =" prefix.
func ErrorMessage(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Message()
	}
	return err.Error()
}
