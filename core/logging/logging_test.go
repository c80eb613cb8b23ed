package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name, level, format string
		wantErr             string // substring; empty means success
		logDebug            bool   // a Debug line must appear
		json                bool
	}{
		{name: "info text", level: "info", format: "text"},
		{name: "debug json", level: "DEBUG", format: "json", logDebug: true, json: true},
		{name: "trace", level: "trace", format: "text", logDebug: true},
		{name: "bad level", level: "verbose", format: "text", wantErr: `--log-level "verbose": must be one of trace, debug, info, warn, error`},
		{name: "empty level", level: "", format: "text", wantErr: `--log-level ""`},
		{name: "bad format", level: "info", format: "yaml", wantErr: `--log-format "yaml": must be one of text, json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log, err := New(&buf, "core", tt.level, tt.format)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New(%q, %q) error = %v, want it to contain %q", tt.level, tt.format, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%q, %q): %v", tt.level, tt.format, err)
			}
			log.Debug("debug-line")
			log.Info("info-line", "key", "value")
			out := buf.String()
			if got := strings.Contains(out, "debug-line"); got != tt.logDebug {
				t.Errorf("debug line logged = %v, want %v; log:\n%s", got, tt.logDebug, out)
			}
			if !strings.Contains(out, "info-line") {
				t.Errorf("info line missing; log:\n%s", out)
			}
			if tt.json {
				for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Errorf("line %q is not JSON: %v", line, err)
					}
				}
			}
		})
	}
}
