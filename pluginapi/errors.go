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
func InvalidInput(field, value, rule string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, "%s %q: %s", field, value, fmt.Sprintf(rule, args...))
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
