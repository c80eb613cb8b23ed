package runner_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// TestScriptQuoting runs generated scripts with real bash: every variable
// value and command must reach the script byte for byte, whatever it
// contains.
func TestScriptQuoting(t *testing.T) {
	values := []struct {
		name, value string
	}{
		{"plain", "hello"},
		{"empty", ""},
		{"single quotes", `it's 'quoted'`},
		{"double quotes and dollars", `"$HOME" $(id) ${PATH} $'x'`},
		{"backticks", "`uname -a`"},
		{"backslashes", `C:\builds\new\t\x41 \\`},
		{"newlines", "line one\nline two\n\nexport EVIL=1\n"},
		{"carriage return and tab", "a\rb\tc"},
		{"control bytes", "bell\a esc\x1b[31m del\x7f nul-free"},
		{"unicode", "grüße 日本 🚀"},
		{"shell syntax", `; rm -rf / #' && echo pwned | cat > /dev/null`},
		{"eval escapes", `\'$'\n'\''`},
	}
	f := newFixture(t)
	var vars []runner.Variable
	var script []string
	for i, v := range values {
		key := fmt.Sprintf("V%d", i)
		vars = append(vars, runner.Variable{Key: key, Value: v.value})
		script = append(script, fmt.Sprintf(`printf '%%s' "$%s" > "$DRIVER_STATE/out.%s"`, key, key))
	}
	vars = append(vars, runner.Variable{Key: "FILEVAR", Value: "file\ncontent 'with' $quotes\n", File: true})
	script = append(script,
		`cat "$FILEVAR" > "$DRIVER_STATE/out.FILEVAR"`,
		`case "$FILEVAR" in "$CI_PROJECT_DIR.tmp/"*) ;; *) echo "file variable outside the project's .tmp dir: $FILEVAR"; exit 9;; esac`,
		"echo 'a command with \"quotes\" and $(echo subshell)'",
	)
	res := run(t, f, runner.Job{ID: 21, Variables: vars, Script: script})
	if res.Status != runner.StatusSuccess {
		t.Fatalf("status %s: %s\n%s", res.Status, res.Reason, res.JobLog())
	}
	for i, v := range values {
		t.Run(v.name, func(t *testing.T) {
			got, err := os.ReadFile(filepath.Join(f.state, fmt.Sprintf("out.V%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != v.value {
				t.Errorf("the script saw %q, want %q", got, v.value)
			}
		})
	}
	got, err := os.ReadFile(filepath.Join(f.state, "out.FILEVAR"))
	if err != nil || string(got) != "file\ncontent 'with' $quotes\n" {
		t.Errorf("file variable content %q (%v)", got, err)
	}
	out := res.Output("step_script")
	if !strings.Contains(out, "$ echo 'a command with \"quotes\" and $(echo subshell)'\na command with \"quotes\" and $(echo subshell)\n") {
		t.Errorf("the echoed command or its output is mangled:\n%s", out)
	}
	if _, err := os.Stat(res.ProjectDir + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("the file variable's directory survived cleanup_file_variables (%v)", err)
	}
}

func TestValidation(t *testing.T) {
	exe, _ := os.Executable()
	tests := []struct {
		name string
		cfg  runner.Config
		job  runner.Job
		want string
	}{
		{"no run_exec", runner.Config{}, runner.Job{ID: 1, Script: []string{"true"}}, "config RunExec: must be set"},
		{"relative exec", runner.Config{RunExec: "driver"}, runner.Job{ID: 1, Script: []string{"true"}}, `config RunExec "driver": must be an absolute path`},
		{"other shell", runner.Config{RunExec: exe, Shell: "pwsh"}, runner.Job{ID: 1, Script: []string{"true"}}, `config Shell "pwsh": must be bash`},
		{"equal exit codes", runner.Config{RunExec: exe, BuildFailureExitCode: 3, SystemFailureExitCode: 3}, runner.Job{ID: 1, Script: []string{"true"}}, "both 3: must differ"},
		{"exit code out of range", runner.Config{RunExec: exe, SystemFailureExitCode: 300}, runner.Job{ID: 1, Script: []string{"true"}}, "config SystemFailureExitCode 300: must be in 1..255"},
		{"too many retries", runner.Config{RunExec: exe, PrepareRetries: 11}, runner.Job{ID: 1, Script: []string{"true"}}, "config PrepareRetries 11: must be in 1..10"},
		{"negative timeout", runner.Config{RunExec: exe, GracefulKillTimeout: -1}, runner.Job{ID: 1, Script: []string{"true"}}, "config GracefulKillTimeout -1ns: must not be negative"},
		{"job without id", runner.Config{RunExec: exe}, runner.Job{Script: []string{"true"}}, "job ID 0: must be positive"},
		{"job without script", runner.Config{RunExec: exe}, runner.Job{ID: 1}, "job Script: must have at least one line"},
		{"bad variable name", runner.Config{RunExec: exe}, runner.Job{ID: 1, Script: []string{"true"}, Variables: []runner.Variable{{Key: "VM-CPU"}}}, `job Variables[0].Key "VM-CPU": must match`},
		{"duplicate variable", runner.Config{RunExec: exe}, runner.Job{ID: 1, Script: []string{"true"}, Variables: []runner.Variable{{Key: "A"}, {Key: "A"}}}, `job Variables[1].Key "A": is given twice`},
		{"file outside the project", runner.Config{RunExec: exe}, runner.Job{ID: 1, Script: []string{"true"}, Files: map[string]string{"../x": ""}}, `job Files path "../x": must be a relative path`},
		{"bad project path", runner.Config{RunExec: exe}, runner.Job{ID: 1, Script: []string{"true"}, ProjectPath: "noslash"}, `job ProjectPath "noslash": must match`},
		{"bad sha", runner.Config{RunExec: exe}, runner.Job{ID: 1, Script: []string{"true"}, SHA: "abc"}, `job SHA "abc": must be 40 lower-case hex digits`},
		{"short timeout", runner.Config{RunExec: exe}, runner.Job{ID: 1, Script: []string{"true"}, Timeout: 1}, "job Timeout 1ns: must be at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := runner.New(tt.cfg)
			if err == nil {
				_, err = e.Run(t.Context(), tt.job)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
