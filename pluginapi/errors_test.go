package pluginapi_test

import (
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

func TestInvalidInput(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		wantInvalid bool
		wantCode    codes.Code
		wantMessage string
	}{
		{
			name:        "field, value and rule",
			err:         pluginapi.InvalidInput("username", "a\nb", "must match %s", "^[a-z]+$"),
			wantInvalid: true,
			wantCode:    codes.InvalidArgument,
			wantMessage: `username "a\nb": must match ^[a-z]+$`,
		},
		{
			name:        "wrapped with context",
			err:         fmt.Errorf("render: %w", pluginapi.InvalidInput("hostname", "x y", "must be a DNS label")),
			wantInvalid: true,
			wantCode:    codes.InvalidArgument,
			wantMessage: `render: hostname "x y": must be a DNS label`,
		},
		{
			name:        "plain error",
			err:         errors.New("disk full"),
			wantCode:    codes.Unknown,
			wantMessage: "disk full",
		},
		{
			name:        "other status",
			err:         status.Error(codes.Unavailable, "guest unreachable"),
			wantCode:    codes.Unavailable,
			wantMessage: "guest unreachable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pluginapi.IsInvalidInput(tt.err); got != tt.wantInvalid {
				t.Errorf("IsInvalidInput() = %v, want %v", got, tt.wantInvalid)
			}
			if got := status.Code(tt.err); got != tt.wantCode {
				t.Errorf("status.Code() = %v, want %v", got, tt.wantCode)
			}
			if got := pluginapi.ErrorMessage(tt.err); got != tt.wantMessage {
				t.Errorf("ErrorMessage() = %q, want %q", got, tt.wantMessage)
			}
		})
	}
}

func TestIsInvalidInputNil(t *testing.T) {
	if pluginapi.IsInvalidInput(nil) {
		t.Error("IsInvalidInput(nil) = true, want false")
	}
}
