package pluginapi_test

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

func TestLoggerLevelFromEnv(t *testing.T) {
	tests := []struct {
		env  string
		want hclog.Level
	}{
		{env: "", want: hclog.Info},
		{env: "trace", want: hclog.Trace},
		{env: "debug", want: hclog.Debug},
		{env: "WARN", want: hclog.Warn},
		{env: "error", want: hclog.Error},
		{env: "nonsense", want: hclog.Info},
	}
	for _, tt := range tests {
		t.Run(tt.env, func(t *testing.T) {
			t.Setenv(pluginapi.LogLevelEnv, tt.env)
			if got := pluginapi.Logger().GetLevel(); got != tt.want {
				t.Errorf("Logger().GetLevel() with %s=%q = %v, want %v", pluginapi.LogLevelEnv, tt.env, got, tt.want)
			}
		})
	}
}

func TestPluginSetsServeInfo(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		set  func() map[string]any
	}{
		{
			name: "os",
			keys: []string{pluginapi.InfoKey, pluginapi.OSKey},
			set: func() map[string]any {
				m := map[string]any{}
				for k, v := range pluginapi.OSPluginSet(&fakeOS{}) {
					m[k] = v
				}
				return m
			},
		},
		{
			name: "transport",
			keys: []string{pluginapi.InfoKey, pluginapi.TransportKey},
			set: func() map[string]any {
				m := map[string]any{}
				for k, v := range pluginapi.TransportPluginSet(&fakeTransport{}) {
					m[k] = v
				}
				return m
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := tt.set()
			if len(set) != len(tt.keys) {
				t.Errorf("plugin set has %d entries, want %d (%v)", len(set), len(tt.keys), tt.keys)
			}
			for _, k := range tt.keys {
				if set[k] == nil {
					t.Errorf("plugin set lacks %q", k)
				}
			}
		})
	}
}
