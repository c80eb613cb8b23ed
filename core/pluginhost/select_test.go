package pluginhost

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func osEntry(file, name, version string, shells ...string) Entry {
	return Entry{File: "gitlab-runner-kubevirt-plugin-" + file, SHA256: shaA, Name: name, Kind: KindOS, Version: version,
		APIVersions: []int{1}, OSFamily: "linux", Shells: shells}
}

func TestSelect(t *testing.T) {
	transport := Entry{File: "gitlab-runner-kubevirt-plugin-ssh", SHA256: shaB, Name: "ssh", Kind: KindTransport, Version: "1.0.0", APIVersions: []int{1}}
	future := osEntry("linux-v2", "linux", "9.0.0", "bash")
	future.APIVersions = []int{2}
	lock := &Lock{APIVersion: 1, Plugins: []Entry{
		osEntry("linux", "linux", "1.2.0", "bash"),
		osEntry("linux-next", "linux", "1.10.0", "bash"), // 1.10.0 > 1.2.0 (not string order)
		osEntry("linux-rc", "linux", "1.10.0-rc.1", "bash"),
		future, // speaks only API 2: never chosen by this core
		osEntry("win", "windows", "1.0.0", "pwsh"),
		osEntry("alpine", "alpine", "1.0.0", "sh"),
		osEntry("alpine-same", "alpine", "1.0.0", "sh"),
		osEntry("flatcar", "flatcar", "1.0.0", "zsh"),
		osEntry("coreos", "coreos", "1.0.0", "zsh"),
		transport,
	}}
	if err := lock.Validate(); err != nil {
		t.Fatalf("test lock is invalid: %v", err)
	}
	tests := []struct {
		name      string
		kind      Kind
		plugin    string // select by name if set
		shell     string // else by shell
		wantFile  string
		wantWarn  []string // substrings of the warning; nil means no warning
		wantError []string
	}{
		{name: "highest version wins", kind: KindOS, plugin: "linux", wantFile: "gitlab-runner-kubevirt-plugin-linux-next",
			wantWarn: []string{"using the highest version", "name=linux", "gitlab-runner-kubevirt-plugin-linux 1.2.0", "gitlab-runner-kubevirt-plugin-linux-rc 1.10.0-rc.1"}},
		{name: "single plugin, no warning", kind: KindOS, plugin: "windows", wantFile: "gitlab-runner-kubevirt-plugin-win"},
		{name: "transport by name", kind: KindTransport, plugin: "ssh", wantFile: "gitlab-runner-kubevirt-plugin-ssh"},
		{name: "equal versions: first file, warned", kind: KindOS, plugin: "alpine", wantFile: "gitlab-runner-kubevirt-plugin-alpine",
			wantWarn: []string{"gitlab-runner-kubevirt-plugin-alpine-same 1.0.0"}},
		{name: "wrong kind", kind: KindTransport, plugin: "linux",
			wantError: []string{`no transport plugin named "linux"`, "locked transport plugins: ssh", "gitlab-runner-kubevirt-plugin-linux", "plugins lock"}},
		{name: "unknown name", kind: KindOS, plugin: "solaris",
			wantError: []string{`no os plugin named "solaris"`, "locked os plugins: alpine, coreos, flatcar, linux, windows"}},
		{name: "by shell", shell: "pwsh", wantFile: "gitlab-runner-kubevirt-plugin-win"},
		{name: "by shell, highest version", shell: "bash", wantFile: "gitlab-runner-kubevirt-plugin-linux-next", wantWarn: []string{"using the highest version"}},
		{name: "shell nobody serves", shell: "fish", wantError: []string{`no os plugin in plugins.lock serves shell "fish"`}},
		{name: "ambiguous shell", shell: "zsh", wantError: []string{`shell "zsh" is served by several os plugins (coreos, flatcar)`, "choose one by name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Trace})
			var e Entry
			var err error
			if tt.plugin != "" {
				e, err = lock.ByName(log, tt.kind, tt.plugin)
			} else {
				e, err = lock.ForShell(log, tt.shell)
			}
			if tt.wantError != nil {
				if err == nil {
					t.Fatalf("selected %s, want an error", e)
				}
				for _, w := range tt.wantError {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("select: %v", err)
			}
			if e.File != tt.wantFile {
				t.Errorf("selected %s, want file %s", e, tt.wantFile)
			}
			log_ := buf.String()
			if tt.wantWarn == nil && log_ != "" {
				t.Errorf("unexpected log output: %s", log_)
			}
			for _, w := range tt.wantWarn {
				if !strings.Contains(log_, "[WARN]") || !strings.Contains(log_, w) {
					t.Errorf("log %q lacks a warning containing %q", log_, w)
				}
			}
		})
	}
}
