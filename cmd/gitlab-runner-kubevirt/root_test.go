package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
)

// execRoot runs the command line in-process and returns stdout, stderr
// and the error Execute returned.
func execRoot(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRoot(&stdout, &stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(t.Context())
	return stdout.String(), stderr.String(), err
}

// walk calls fn for cmd and every command below it.
func walk(cmd *cobra.Command, fn func(*cobra.Command)) {
	fn(cmd)
	for _, c := range cmd.Commands() {
		walk(c, fn)
	}
}

func TestEveryCommandHasAnExample(t *testing.T) {
	var n int
	walk(newRootCmd(), func(c *cobra.Command) {
		n++
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("command %q has no Example", c.CommandPath())
		}
		if !strings.Contains(c.Example, "gitlab-runner-kubevirt") {
			t.Errorf("command %q: Example does not show the binary's name: %q", c.CommandPath(), c.Example)
		}
	})
	// root, version, plugins (+3), config, prepare, run, cleanup, gc,
	// install, completion (+4).
	if n < 16 {
		t.Errorf("walked %d commands, want at least 16: a command is not registered", n)
	}
}

func TestCompletion(t *testing.T) {
	tests := []struct {
		shell string
		want  string // a line every script of this shell carries
		check []string
	}{
		{shell: "bash", want: "__start_gitlab-runner-kubevirt", check: []string{"bash", "-n"}},
		{shell: "zsh", want: "#compdef gitlab-runner-kubevirt"},
		{shell: "fish", want: "complete -c gitlab-runner-kubevirt"},
		{shell: "powershell", want: "Register-ArgumentCompleter"},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			out, stderr, err := execRoot(t, "completion", tt.shell)
			if err != nil {
				t.Fatalf("completion %s: %v (stderr %s)", tt.shell, err, stderr)
			}
			if !strings.Contains(out, tt.want) {
				t.Fatalf("completion %s output lacks %q:\n%.400s", tt.shell, tt.want, out)
			}
			if tt.check == nil {
				return
			}
			if _, err := exec.LookPath(tt.check[0]); err != nil {
				t.Fatalf("%s is needed to check the %s completion script: install the Debian package %s", tt.check[0], tt.shell, tt.check[0])
			}
			script := filepath.Join(t.TempDir(), "completion."+tt.shell)
			if err := os.WriteFile(script, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.CommandContext(t.Context(), tt.check[0], append(tt.check[1:], script)...).CombinedOutput(); err != nil {
				t.Fatalf("%s refuses the %s completion script: %v\n%s", strings.Join(tt.check, " "), tt.shell, err, b)
			}
		})
	}
}

func TestEnvName(t *testing.T) {
	tests := []struct{ flag, want string }{
		{"namespace", "GITLAB_RUNNER_KUBEVIRT_NAMESPACE"},
		{"default-image", "GITLAB_RUNNER_KUBEVIRT_DEFAULT_IMAGE"},
		{"log-level", "GITLAB_RUNNER_KUBEVIRT_LOG_LEVEL"},
		// The variable pluginhost reads itself follows the same rule.
		{"plugin-dir", pluginhost.DirEnv},
	}
	for _, tt := range tests {
		if got := EnvName(tt.flag); got != tt.want {
			t.Errorf("EnvName(%q) = %q, want %q", tt.flag, got, tt.want)
		}
	}
}

// TestApplyEnv checks the binding on prepare's real flag set.
func TestApplyEnv(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    map[string]string // flag -> value after binding
		wantErr []string          // substrings of the error
		notErr  []string          // must not appear in the error
	}{
		{name: "variable sets an unset flag",
			env:  map[string]string{"GITLAB_RUNNER_KUBEVIRT_NAMESPACE": "ci", "GITLAB_RUNNER_KUBEVIRT_DEFAULT_IMAGE": "quay.io/containerdisks/debian:12"},
			want: map[string]string{"namespace": "ci", "default-image": "quay.io/containerdisks/debian:12"}},
		{name: "explicit flag wins", args: []string{"--namespace", "from-flag"},
			env:  map[string]string{"GITLAB_RUNNER_KUBEVIRT_NAMESPACE": "from-env"},
			want: map[string]string{"namespace": "from-flag"}},
		{name: "list flag takes a comma-separated value",
			env:  map[string]string{"GITLAB_RUNNER_KUBEVIRT_ALLOWED_IMAGES": "a/*,b/*"},
			want: map[string]string{"allowed-images": "[a/*,b/*]"}},
		{name: "inherited persistent flag", args: []string{"--log-level", "debug"},
			env:  map[string]string{"GITLAB_RUNNER_KUBEVIRT_LOG_FORMAT": "json", "GITLAB_RUNNER_KUBEVIRT_LOG_LEVEL": "error"},
			want: map[string]string{"log-format": "json", "log-level": "debug"}},
		{name: "no variable keeps the default", want: map[string]string{"timeout": "10m0s", "ssh-port": "22"}},
		{name: "empty variable is a value", env: map[string]string{"GITLAB_RUNNER_KUBEVIRT_SSH_USER": ""},
			want: map[string]string{"ssh-user": ""}},
		{name: "plugin-dir is left to pluginhost", env: map[string]string{"GITLAB_RUNNER_KUBEVIRT_PLUGIN_DIR": "/opt/plugins"},
			want: map[string]string{"plugin-dir": ""}},
		{name: "bad duration names the variable", env: map[string]string{"GITLAB_RUNNER_KUBEVIRT_TIMEOUT": "soon"},
			wantErr: []string{"GITLAB_RUNNER_KUBEVIRT_TIMEOUT", `"soon"`, "--timeout", "invalid duration"}},
		{name: "bad integer names the variable", env: map[string]string{"GITLAB_RUNNER_KUBEVIRT_SSH_PORT": "twenty-two"},
			wantErr: []string{"GITLAB_RUNNER_KUBEVIRT_SSH_PORT", `"twenty-two"`, "--ssh-port"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newRootCmd()
			cmd, _, err := root.Find([]string{"prepare"})
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			lookup := func(k string) (string, bool) { v, ok := tt.env[k]; return v, ok }
			_, err = applyEnv(cmd.Flags(), lookup)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatal("no error")
				}
				for _, s := range tt.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q lacks %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for flag, want := range tt.want {
				if got := cmd.Flags().Lookup(flag).Value.String(); got != want {
					t.Errorf("--%s = %q, want %q", flag, got, want)
				}
			}
		})
	}
}

func TestApplyEnvRedactsSecretFlags(t *testing.T) {
	fs := newRootCmd().PersistentFlags()
	fs.Int("transport-option", 0, "stand-in that refuses text")
	_, err := applyEnv(fs, func(k string) (string, bool) {
		return "password=hunter2", k == "GITLAB_RUNNER_KUBEVIRT_TRANSPORT_OPTION"
	})
	if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "<redacted>") {
		t.Errorf("error = %v, want the variable named and the value redacted", err)
	}
}

// TestEnvThroughExecute runs whole command lines with the variables in
// the process environment.
func TestEnvThroughExecute(t *testing.T) {
	tests := []struct {
		name       string
		env        map[string]string
		args       []string
		wantErr    string
		wantCode   int    // exitError code, when wantErr is set
		wantStderr string // substring of the runner log
	}{
		{name: "bad log format from the environment", env: map[string]string{"GITLAB_RUNNER_KUBEVIRT_LOG_FORMAT": "xml"},
			args: []string{"version"}, wantErr: `environment variable GITLAB_RUNNER_KUBEVIRT_LOG_FORMAT: --log-format "xml"`},
		{name: "stage command: bad value is a system failure", env: map[string]string{"GITLAB_RUNNER_KUBEVIRT_TIMEOUT": "soon", "SYSTEM_FAILURE_EXIT_CODE": "7"},
			args: []string{"cleanup"}, wantErr: "GITLAB_RUNNER_KUBEVIRT_TIMEOUT", wantCode: 7},
		{name: "log level and format from the environment shape the runner log",
			env:        map[string]string{"GITLAB_RUNNER_KUBEVIRT_LOG_LEVEL": "debug", "GITLAB_RUNNER_KUBEVIRT_LOG_FORMAT": "json"},
			args:       []string{"plugins", "list", "--plugin-dir", "PLUGINDIR"},
			wantStderr: `"@message":"plugin directory"`},
		{name: "explicit flag beats the environment",
			env:  map[string]string{"GITLAB_RUNNER_KUBEVIRT_LOG_LEVEL": "debug", "GITLAB_RUNNER_KUBEVIRT_LOG_FORMAT": "json"},
			args: []string{"--log-level", "info", "plugins", "list", "--plugin-dir", "PLUGINDIR"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			dir := t.TempDir()
			args := make([]string, len(tt.args))
			for i, a := range tt.args {
				args[i] = strings.ReplaceAll(a, "PLUGINDIR", dir)
			}
			_, stderr, err := execRoot(t, args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				var ee *exitError
				if tt.wantCode != 0 && (!errors.As(err, &ee) || ee.code != tt.wantCode) {
					t.Errorf("error %v: want exit code %d", err, tt.wantCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantStderr == "" {
				if stderr != "" {
					t.Errorf("runner log at info = %q, want nothing", stderr)
				}
				return
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("runner log %q lacks %q", stderr, tt.wantStderr)
			}
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if !json.Valid([]byte(line)) {
					t.Errorf("runner log line is not JSON: %q", line)
				}
			}
		})
	}
}
