package pluginapi_test

import (
	"context"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// validatingTransport is a fakeTransport that also checks targets.
type validatingTransport struct {
	fakeTransport
	validate func(*pluginv1.Target) error
}

func (v *validatingTransport) ValidateTarget(_ context.Context, target *pluginv1.Target) error {
	return v.validate(target)
}

func TestValidateTargetOverGRPC(t *testing.T) {
	refuse := func(target *pluginv1.Target) error {
		if target.GetOptions()["bogus"] != "" {
			return pluginapi.InvalidInput("option", "bogus", "is not an option of this transport")
		}
		return nil
	}
	tests := []struct {
		name        string
		impl        pluginapi.TransportPlugin
		options     map[string]string
		wantInvalid bool
	}{
		{"validator accepts", &validatingTransport{validate: refuse}, map[string]string{"keepalive_interval": "5s"}, false},
		{"validator refuses", &validatingTransport{validate: refuse}, map[string]string{"bogus": "1"}, true},
		// A plugin without the check answers Unimplemented, which passes:
		// it is checked when it connects.
		{"plugin without the check", &fakeTransport{}, map[string]string{"bogus": "1"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := plugintest.Transport(t, tt.impl)
			target := testTarget()
			target.Options = tt.options
			err := pluginapi.ValidateTarget(t.Context(), client, target)
			if tt.wantInvalid != pluginapi.IsInvalidInput(err) || (!tt.wantInvalid && err != nil) {
				t.Fatalf("ValidateTarget = %v, want invalid input %t", err, tt.wantInvalid)
			}
		})
	}
}
