package deploy_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
)

// sourceTree lays out an installation like the image's
// /opt/gitlab-runner-kubevirt: the core binary, plugins/ with every built
// plugin (one of them mode 0750, to see modes kept) and a plugins.lock
// written by the core's own `plugins lock`. Files are hard links to the
// built binaries where possible; tests that change one replace it.
func sourceTree(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	plugins := filepath.Join(src, "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	linkOrCopy(t, fx.core, filepath.Join(src, "gitlab-runner-kubevirt"))
	for i, p := range fx.plugins {
		dst := filepath.Join(plugins, filepath.Base(p))
		if i == 0 {
			copyFile(t, p, dst, 0o750)
		} else {
			linkOrCopy(t, p, dst)
		}
	}
	res := runCore(t, filepath.Join(src, "gitlab-runner-kubevirt"), nil, "plugins", "lock")
	if res.code != 0 {
		t.Fatalf("plugins lock: exit %d\n%s", res.code, res.stderr)
	}
	return src
}

func linkOrCopy(t *testing.T, src, dst string) {
	t.Helper()
	if os.Link(src, dst) == nil {
		return
	}
	fi, err := os.Stat(src)
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, src, dst, fi.Mode().Perm())
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dst, mode); err != nil {
		t.Fatal(err)
	}
}

// TestInstall runs `gitlab-runner-kubevirt install DIR` (the init
// container's command) on real binaries and plugins.
func TestInstall(t *testing.T) {
	first := filepath.Base(fx.plugins[0])
	tests := []struct {
		name string
		// setup changes the source tree and returns the DIR argument(s).
		setup func(t *testing.T, src string) []string
		// wantErr are substrings of stderr; none means success.
		wantErr []string
		// check runs after a successful install into args[0].
		check func(t *testing.T, src, dst string, res runResult)
	}{
		{
			name:  "into a new directory",
			setup: func(t *testing.T, _ string) []string { return []string{filepath.Join(t.TempDir(), "a", "b")} },
			check: checkInstalled,
		},
		{
			name: "over an older installation",
			setup: func(t *testing.T, _ string) []string {
				dst := t.TempDir()
				if err := os.MkdirAll(filepath.Join(dst, "plugins"), 0o755); err != nil {
					t.Fatal(err)
				}
				for _, f := range []string{"gitlab-runner-kubevirt", "plugins/" + first, "plugins/plugins.lock"} {
					if err := os.WriteFile(filepath.Join(dst, f), []byte("old"), 0o600); err != nil {
						t.Fatal(err)
					}
				}
				return []string{dst}
			},
			check: checkInstalled,
		},
		{
			name: "an unlocked plugin file is left out",
			setup: func(t *testing.T, src string) []string {
				copyFile(t, fx.plugins[0], filepath.Join(src, "plugins", "gitlab-runner-kubevirt-plugin-extra"), 0o755)
				return []string{t.TempDir()}
			},
			check: func(t *testing.T, src, dst string, res runResult) {
				checkInstalled(t, src, dst, res)
				if _, err := os.Stat(filepath.Join(dst, "plugins", "gitlab-runner-kubevirt-plugin-extra")); err == nil {
					t.Error("install copied a plugin plugins.lock does not pin")
				}
				if !strings.Contains(res.stderr, "gitlab-runner-kubevirt-plugin-extra: not in plugins.lock") {
					t.Errorf("stderr does not explain the skipped plugin:\n%s", res.stderr)
				}
			},
		},
		{
			name: "a plugin changed after plugins lock",
			setup: func(t *testing.T, src string) []string {
				p := filepath.Join(src, "plugins", first)
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(p); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, append(data, 0), 0o755); err != nil {
					t.Fatal(err)
				}
				return []string{t.TempDir()}
			},
			wantErr: []string{first, "sha256", "plugins.lock pins", "plugins lock"},
		},
		{
			name: "a locked plugin is missing",
			setup: func(t *testing.T, src string) []string {
				if err := os.Remove(filepath.Join(src, "plugins", first)); err != nil {
					t.Fatal(err)
				}
				return []string{t.TempDir()}
			},
			wantErr: []string{"plugins.lock locks " + first, "has no such file"},
		},
		{
			name: "no plugins.lock",
			setup: func(t *testing.T, src string) []string {
				if err := os.Remove(filepath.Join(src, "plugins", "plugins.lock")); err != nil {
					t.Fatal(err)
				}
				return []string{t.TempDir()}
			},
			wantErr: []string{"no plugins.lock in", "plugins lock"},
		},
		{
			name: "DIR is a file",
			setup: func(t *testing.T, _ string) []string {
				f := filepath.Join(t.TempDir(), "file")
				if err := os.WriteFile(f, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				return []string{f}
			},
			wantErr: []string{"not a directory"},
		},
		{
			name:    "DIR is where the binary already is",
			setup:   func(t *testing.T, src string) []string { return []string{src} },
			wantErr: []string{`DIR "`, "is this binary's directory"},
		},
		{
			name:    "DIR is empty",
			setup:   func(*testing.T, string) []string { return []string{""} },
			wantErr: []string{`DIR "": must be the directory to install into`},
		},
		{
			name:    "no DIR",
			setup:   func(*testing.T, string) []string { return nil },
			wantErr: []string{"exactly one argument, the target directory DIR; got 0"},
		},
		{
			name:    "two DIRs",
			setup:   func(t *testing.T, _ string) []string { return []string{t.TempDir(), t.TempDir()} },
			wantErr: []string{"got 2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := sourceTree(t)
			dirs := tt.setup(t, src)
			res := runCore(t, filepath.Join(src, "gitlab-runner-kubevirt"), nil, append([]string{"install"}, dirs...)...)
			if len(tt.wantErr) > 0 {
				if res.code == 0 {
					t.Fatalf("install %q succeeded, want an error:\n%s", dirs, res.stdout)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(res.stderr, w) {
						t.Errorf("stderr does not mention %q:\n%s", w, res.stderr)
					}
				}
				if len(dirs) == 1 {
					checkNoTempFiles(t, dirs[0])
				}
				return
			}
			if res.code != 0 {
				t.Fatalf("install %q: exit %d\n%s", dirs, res.code, res.stderr)
			}
			tt.check(t, src, dirs[0], res)
		})
	}
}

// checkInstalled compares the installation in dst with the source tree,
// and asks the installed binary to list its plugins.
func checkInstalled(t *testing.T, src, dst string, res runResult) {
	t.Helper()
	lock, err := pluginhost.ReadLock(filepath.Join(src, "plugins"))
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"gitlab-runner-kubevirt", "plugins/plugins.lock"}
	for _, e := range lock.Plugins {
		files = append(files, "plugins/"+e.File)
	}
	for _, f := range files {
		s, err := os.Stat(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		d, err := os.Stat(filepath.Join(dst, f))
		if err != nil {
			t.Errorf("not installed: %v", err)
			continue
		}
		if d.Mode() != s.Mode() {
			t.Errorf("%s: installed mode %s, source mode %s", f, d.Mode(), s.Mode())
		}
		if !sameContent(t, filepath.Join(src, f), filepath.Join(dst, f)) {
			t.Errorf("%s: installed content differs from the source", f)
		}
		if !strings.Contains(res.stdout, "installed "+filepath.Join(dst, f)+" ") {
			t.Errorf("output does not report %s:\n%s", f, res.stdout)
		}
	}
	checkNoTempFiles(t, dst)

	list := runCore(t, filepath.Join(dst, "gitlab-runner-kubevirt"), nil, "plugins", "list", "-o", "json")
	if list.code != 0 {
		t.Fatalf("installed plugins list: exit %d\n%s", list.code, list.stderr)
	}
	var rows []struct {
		Path   string `json:"path"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal([]byte(list.stdout), &rows); err != nil {
		t.Fatalf("plugins list -o json: %v\n%s", err, list.stdout)
	}
	if len(rows) != len(lock.Plugins) {
		t.Errorf("installed plugins list shows %d plugins, want %d", len(rows), len(lock.Plugins))
	}
	for _, r := range rows {
		if r.Status != "ok" || !strings.HasPrefix(r.Path, dst) {
			t.Errorf("installed plugin %s: status %s, want ok from %s", r.Path, r.Status, dst)
		}
	}
}

func sameContent(t *testing.T, a, b string) bool {
	t.Helper()
	fa, err := os.Open(a)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer fb.Close()
	const chunk = 1 << 20
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	for {
		na, ea := io.ReadFull(fa, ba)
		nb, eb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false
		}
		if ea != nil || eb != nil {
			return ea == eb || (na == 0 && nb == 0)
		}
	}
}

// checkNoTempFiles fails if an install left a temporary file under dir.
func checkNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err == nil && strings.Contains(filepath.Base(p), ".tmp-") {
			t.Errorf("install left a temporary file %s", p)
		}
		return nil
	})
}
