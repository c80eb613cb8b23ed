package stages

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

func TestExitStatus(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		env      map[string]string
		wantCode int
		wantFile string // content of BUILD_EXIT_CODE_FILE; "" means not written
	}{
		{name: "success", err: nil, wantCode: 0},
		{name: "system failure", err: SystemFailure(errors.New("boom")), env: map[string]string{"SYSTEM_FAILURE_EXIT_CODE": "3", "BUILD_FAILURE_EXIT_CODE": "2"}, wantCode: 3},
		{name: "plain error is a system failure", err: errors.New("boom"), env: map[string]string{"SYSTEM_FAILURE_EXIT_CODE": "3"}, wantCode: 3},
		{name: "build failure writes the code", err: BuildFailure(42, errors.New("script failed")), env: map[string]string{"BUILD_FAILURE_EXIT_CODE": "2"}, wantCode: 2, wantFile: "42"},
		{name: "wrapped build failure", err: errors.Join(errors.New("context"), BuildFailure(7, nil)), env: map[string]string{"BUILD_FAILURE_EXIT_CODE": "2"}, wantCode: 2, wantFile: "7"},
		{name: "no codes given falls back to 1", err: BuildFailure(5, nil), wantCode: 1, wantFile: "5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "exit-code")
			env := map[string]string{"BUILD_EXIT_CODE_FILE": file}
			for k, v := range tt.env {
				env[k] = v
			}
			code, err := ExitStatus(jobenv.FromMap(env), tt.err)
			if err != nil {
				t.Fatalf("ExitStatus: %v", err)
			}
			if code != tt.wantCode {
				t.Errorf("code = %d, want %d", code, tt.wantCode)
			}
			got, err := os.ReadFile(file)
			if tt.wantFile == "" {
				if !errors.Is(err, os.ErrNotExist) {
					t.Errorf("exit-code file written (%q, %v)", got, err)
				}
				return
			}
			if string(got) != tt.wantFile {
				t.Errorf("exit-code file = %q, want %q", got, tt.wantFile)
			}
		})
	}
}

func TestExitStatusReportsUnwritableFile(t *testing.T) {
	env := jobenv.FromMap(map[string]string{"BUILD_EXIT_CODE_FILE": filepath.Join(t.TempDir(), "missing", "dir", "f"), "BUILD_FAILURE_EXIT_CODE": "2"})
	code, err := ExitStatus(env, BuildFailure(1, nil))
	if code != 2 || err == nil || !strings.Contains(err.Error(), "BUILD_EXIT_CODE_FILE") {
		t.Errorf("ExitStatus = %d, %v", code, err)
	}
}

func TestScriptPath(t *testing.T) {
	linux := &pluginv1.RunRecipe{ScriptExtension: ".sh", TempDir: "/tmp/", PathSeparator: "/"}
	windows := &pluginv1.RunRecipe{ScriptExtension: ".ps1", TempDir: `C:\Windows\Temp`, PathSeparator: `\`}
	tests := []struct {
		name   string
		recipe *pluginv1.RunRecipe
		stage  string
		want   string
		err    string
	}{
		{name: "step script", recipe: linux, stage: "step_script", want: "/tmp/gitlab-12-step_script.sh"},
		{name: "upper case and spaces", recipe: linux, stage: "Build Script", want: "/tmp/gitlab-12-build-script.sh"},
		{name: "shell metacharacters", recipe: linux, stage: "x; rm -rf /$(id)", want: "/tmp/gitlab-12-x-rm--rf-id.sh"},
		{name: "path traversal", recipe: linux, stage: "../../etc/passwd", want: "/tmp/gitlab-12-etc-passwd.sh"},
		{name: "empty stage", recipe: linux, stage: "", want: "/tmp/gitlab-12-script.sh"},
		{name: "windows", recipe: windows, stage: "get_sources", want: `C:\Windows\Temp\gitlab-12-get_sources.ps1`},
		{name: "default separator", recipe: &pluginv1.RunRecipe{ScriptExtension: ".sh", TempDir: "/var/tmp"}, stage: "a", want: "/var/tmp/gitlab-12-a.sh"},
		{name: "bad extension", recipe: &pluginv1.RunRecipe{ScriptExtension: "sh; x", TempDir: "/tmp"}, stage: "a", err: "script_extension"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := scriptPath(tt.recipe, "12", tt.stage)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// The name ends in -<8 hex digits> before the extension.
			ext := tt.recipe.GetScriptExtension()
			base := strings.TrimSuffix(got, ext)
			if len(base) < 9 || base[len(base)-9] != '-' || strings.Trim(base[len(base)-8:], "0123456789abcdef") != "" {
				t.Fatalf("scriptPath = %q lacks the random part", got)
			}
			if stripped := base[:len(base)-9] + ext; stripped != tt.want {
				t.Errorf("scriptPath = %q, want %q plus a random part", got, tt.want)
			}
			again, _ := scriptPath(tt.recipe, "12", tt.stage)
			if again == got {
				t.Errorf("two calls gave the same path %q", got)
			}
			name := got[strings.LastIndexAny(got, `/\`)+1:]
			if strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789._-") != "" {
				t.Errorf("file name %q has characters outside [a-z0-9._-]", name)
			}
		})
	}
}

func TestCheckRecipe(t *testing.T) {
	ok := func() *pluginv1.RunRecipe {
		return &pluginv1.RunRecipe{Shell: "bash", ScriptExtension: ".sh", TempDir: "/tmp", Command: "bash {script}"}
	}
	tests := []struct {
		name   string
		mutate func(*pluginv1.RunRecipe) *pluginv1.RunRecipe
		want   string
	}{
		{"valid", func(r *pluginv1.RunRecipe) *pluginv1.RunRecipe { return r }, ""},
		{"nil", func(*pluginv1.RunRecipe) *pluginv1.RunRecipe { return nil }, "no run recipe"},
		{"no placeholder", func(r *pluginv1.RunRecipe) *pluginv1.RunRecipe { r.Command = "bash"; return r }, "no {script} placeholder"},
		{"no temp dir", func(r *pluginv1.RunRecipe) *pluginv1.RunRecipe { r.TempDir = ""; return r }, "no temp_dir"},
		{"bad extension", func(r *pluginv1.RunRecipe) *pluginv1.RunRecipe { r.ScriptExtension = "sh"; return r }, "script_extension"},
		{"other shell", func(r *pluginv1.RunRecipe) *pluginv1.RunRecipe { r.Shell = "pwsh"; return r }, `is for shell "pwsh"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkRecipe("p", "bash", tt.mutate(ok()))
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestSignalExitCode(t *testing.T) {
	for _, tt := range []struct {
		name string
		want int
	}{{"KILL", 137}, {"SIGTERM", 143}, {"INT", 130}, {"WEIRD", 1}} {
		if got := signalExitCode(tt.name); got != tt.want {
			t.Errorf("signalExitCode(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestDefaultDirs(t *testing.T) {
	for _, tt := range []struct {
		family, user, builds, cache string
	}{
		{"linux", "runner", "/home/runner/builds", "/home/runner/cache"},
		{"linux", "root", "/root/builds", "/root/cache"},
		{"windows", "runner", `C:\builds`, `C:\cache`},
	} {
		b, c := defaultDirs(tt.family, tt.user)
		if b != tt.builds || c != tt.cache {
			t.Errorf("defaultDirs(%q, %q) = %q, %q", tt.family, tt.user, b, c)
		}
	}
}
