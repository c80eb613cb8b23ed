package pluginhost

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestResolveDir(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) string {
		t.Helper()
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	flagDir := mk(filepath.Join(root, "flag"))
	envDir := mk(filepath.Join(root, "env"))
	// The core installed as /opt/grk/bin/core, reached through a symlink
	// /usr-ish/bin/core: plugins/ is beside the real file.
	mk(filepath.Join(root, "opt", "bin", DefaultDirName))
	realExe := filepath.Join(root, "opt", "bin", "gitlab-runner-kubevirt")
	if err := os.WriteFile(realExe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	mk(filepath.Join(root, "link"))
	linkExe := filepath.Join(root, "link", "gitlab-runner-kubevirt")
	if err := os.Symlink(realExe, linkExe); err != nil {
		t.Fatal(err)
	}
	// An executable with no plugins/ beside it.
	mk(filepath.Join(root, "bare"))
	bareExe := filepath.Join(root, "bare", "gitlab-runner-kubevirt")
	if err := os.WriteFile(bareExe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(root, "file")
	if err := os.WriteFile(aFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		flag, env  string
		exe        string
		exeErr     error
		wantPath   string
		wantSource string
		wantErr    []string
	}{
		{name: "flag wins over env", flag: flagDir, env: envDir, exe: linkExe, wantPath: flagDir, wantSource: "--plugin-dir"},
		{name: "env", env: envDir, exe: linkExe, wantPath: envDir, wantSource: DirEnv},
		{name: "beside the executable, symlinks resolved", exe: linkExe, wantPath: filepath.Join(root, "opt", "bin", DefaultDirName), wantSource: "default: plugins/ beside " + realExe},
		{name: "missing flag dir", flag: filepath.Join(root, "nope"), wantErr: []string{filepath.Join(root, "nope"), "(from --plugin-dir)", "does not exist", "create it"}},
		{name: "missing env dir", env: filepath.Join(root, "nope"), wantErr: []string{filepath.Join(root, "nope"), "(from " + DirEnv + ")", "does not exist"}},
		{name: "missing default dir", exe: bareExe, wantErr: []string{filepath.Join(root, "bare", "plugins"), "(from default: plugins/ beside " + bareExe + ")", "does not exist"}},
		{name: "executable vanished", exe: filepath.Join(root, "gone"), wantErr: []string{"find the plugin directory beside this executable", filepath.Join(root, "gone"), "pass --plugin-dir"}},
		{name: "not a directory", flag: aFile, wantErr: []string{aFile, "is not a directory"}},
		{name: "executable unknown", exeErr: errors.New("no /proc"), wantErr: []string{"no /proc", "pass --plugin-dir or set " + DirEnv}},
		{name: "relative flag made absolute", flag: ".", wantPath: mustAbs(t, "."), wantSource: "--plugin-dir"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == DirEnv {
					return tt.env
				}
				return ""
			}
			exe := func() (string, error) { return tt.exe, tt.exeErr }
			d, err := resolveDir(tt.flag, getenv, exe)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("resolveDir = %v, want an error", d)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("resolveDir: %v", err)
			}
			if d.Path != tt.wantPath || d.Source != tt.wantSource {
				t.Errorf("resolveDir = %+v, want path %s source %q", d, tt.wantPath, tt.wantSource)
			}
		})
	}
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestResolveDirUnreadable checks a directory the user cannot read. Root
// reads every directory, so as root the check runs in a child process as
// user nobody (65534).
func TestResolveDirUnreadable(t *testing.T) {
	base, err := os.MkdirTemp("", "pluginhost-unreadable-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(base, "plugins"), 0o755); os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(base, "plugins")
	if err := os.Mkdir(dir, 0o000); err != nil {
		t.Fatal(err)
	}
	want := []string{dir, "(from " + DirEnv + ")", "is not readable", "permission denied", "chmod 0755"}

	var msg string
	if os.Geteuid() != 0 {
		t.Setenv(DirEnv, dir)
		_, err := ResolveDir("")
		if err == nil {
			t.Fatalf("ResolveDir(%s) with mode 000 succeeded", dir)
		}
		msg = err.Error()
	} else {
		// The test binary must be executable by nobody: copy it out of
		// the go build cache's private directory.
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(base, "pluginhost.test")
		copyFile(t, self, bin, 0o755)
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = []string{helperEnv + "=resolve-dir", DirEnv + "=" + dir, "PATH=/usr/bin:/bin"}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("helper as nobody: %v, want exit code 1 (directory unreadable); output:\n%s", err, out)
		}
		msg = string(out)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("error %q does not contain %q", msg, w)
		}
	}
}
