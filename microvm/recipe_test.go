//go:build linux

package microvm

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// requiredPackages are what every guest needs for gitlab-runner-kubevirt:
// boot, first-boot data, SSH access and git. The list guards against a
// recipe edit that would build but not serve jobs.
var requiredPackages = []string{
	"systemd-sysv", "udev", "dbus", "openssh-server", "openssh-sftp-server",
	"cloud-init", "python3-cffi-backend", "iproute2", "netbase",
	"git", "git-lfs", "ca-certificates", "curl", "bash", "sudo",
}

// lookPath finds a tool the test needs or fails naming its package.
func lookPath(t *testing.T, tool, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if fi, err := os.Stat(filepath.Join(dir, tool)); err == nil && fi.Mode()&0o111 != 0 {
				return filepath.Join(dir, tool)
			}
		}
		t.Fatalf("%s not found: install the Debian package %s (microvm/install-deps.sh installs it)", tool, pkg)
	}
	return p
}

// recipeTree extracts the embedded build.sh and recipes into a temporary
// directory, as Build does.
func recipeTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, recipes); err != nil {
		t.Fatal(err)
	}
	return dir
}

// printDir runs build.sh --print-dir in tree with extra environment.
func printDir(t *testing.T, tree, guest string, env ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(lookPath(t, "bash", "bash"), filepath.Join(tree, "build.sh"), "--print-dir", guest)
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME=/cache-root", "MICROVM_MIRROR=", "MICROVM_SECURITY_MIRROR=")
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return strings.TrimSpace(stdout.String()), stderr.String(), err
}

// packageList reads a recipe's packages file.
func packageList(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var pkgs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			pkgs = append(pkgs, line)
		}
	}
	return pkgs
}

func TestRecipes(t *testing.T) {
	guests := Guests()
	if len(guests) == 0 {
		t.Fatal("no embedded guest recipes")
	}
	for _, guest := range guests {
		t.Run(guest, func(t *testing.T) {
			dir := filepath.Join("guests", guest)

			t.Run("packages", func(t *testing.T) {
				pkgs := packageList(t, filepath.Join(dir, "packages"))
				for _, p := range requiredPackages {
					if !slices.Contains(pkgs, p) {
						t.Errorf("packages does not list %s", p)
					}
				}
				if !slices.ContainsFunc(pkgs, func(p string) bool { return strings.HasPrefix(p, "linux-image-") }) {
					t.Error("packages lists no kernel (linux-image-*)")
				}
			})

			t.Run("build.sh accepts recipe.conf", func(t *testing.T) {
				out, stderr, err := printDir(t, ".", guest)
				if err != nil {
					t.Fatalf("build.sh --print-dir %s: %v\n%s", guest, err, stderr)
				}
				if !strings.HasPrefix(filepath.Base(out), guest+"-") {
					t.Errorf("output directory %q is not named <guest>-<hash>", out)
				}
			})

			t.Run("cloud-init config", func(t *testing.T) {
				cfgs, _ := filepath.Glob(filepath.Join(dir, "rootfs/etc/cloud/cloud.cfg.d/*.cfg"))
				if len(cfgs) == 0 {
					t.Fatal("no rootfs/etc/cloud/cloud.cfg.d/*.cfg: the stock module list ends in status error on a minimal image")
				}
				cloudInit := lookPath(t, "cloud-init", "cloud-init")
				for _, cfg := range cfgs {
					if out, err := exec.Command(cloudInit, "schema", "--config-file", cfg).CombinedOutput(); err != nil {
						t.Errorf("cloud-init schema --config-file %s: %v\n%s", cfg, err, out)
					}
					checkCloudInitModules(t, cloudInit, cfg)
				}
			})

			t.Run("sshd config", func(t *testing.T) {
				drops, _ := filepath.Glob(filepath.Join(dir, "rootfs/etc/ssh/sshd_config.d/*.conf"))
				if len(drops) == 0 {
					t.Fatal("no rootfs/etc/ssh/sshd_config.d/*.conf")
				}
				sshd := lookPath(t, "sshd", "openssh-server")
				key := filepath.Join(t.TempDir(), "host_key")
				if out, err := exec.Command(lookPath(t, "ssh-keygen", "openssh-client"), "-q", "-t", "ed25519", "-N", "", "-f", key).CombinedOutput(); err != nil {
					t.Fatalf("ssh-keygen: %v: %s", err, out)
				}
				for _, d := range drops {
					if out, err := exec.Command(sshd, "-t", "-f", d, "-h", key).CombinedOutput(); err != nil {
						t.Errorf("sshd -t -f %s: %v\n%s", d, err, out)
					}
					data, err := os.ReadFile(d)
					if err != nil {
						t.Fatal(err)
					}
					// The guest must serve only the host key cloud-init injects.
					if !strings.Contains(string(data), "\nHostKey /etc/ssh/ssh_host_ed25519_key\n") {
						t.Errorf("%s does not restrict sshd to the ed25519 host key", d)
					}
				}
			})

			t.Run("customize.sh", func(t *testing.T) {
				p := filepath.Join(dir, "customize.sh")
				if _, err := os.Stat(p); os.IsNotExist(err) {
					return // optional
				}
				if out, err := exec.Command(lookPath(t, "sh", "dash"), "-n", p).CombinedOutput(); err != nil {
					t.Errorf("sh -n %s: %v\n%s", p, err, out)
				}
			})
		})
	}
}

// checkCloudInitModules imports every module a cloud.cfg.d file lists with
// the Python cloud-init runs on, so a misspelt module (which cloud-init
// would skip with only a warning) fails here.
func checkCloudInitModules(t *testing.T, cloudInit, cfg string) {
	t.Helper()
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatalf("%s: %v", cfg, err)
	}
	var modules []string
	for _, stage := range []string{"cloud_init_modules", "cloud_config_modules", "cloud_final_modules"} {
		list, ok := c[stage].([]any)
		if !ok {
			t.Errorf("%s: %s is not a list of modules", cfg, stage)
			continue
		}
		for _, m := range list {
			name, ok := m.(string)
			if !ok {
				t.Errorf("%s: %s entry %v is not a module name", cfg, stage, m)
				continue
			}
			modules = append(modules, "cloudinit.config.cc_"+strings.ReplaceAll(name, "-", "_"))
		}
	}
	// cloud-init's interpreter is on its first line (#!/usr/bin/python3).
	script, err := os.ReadFile(cloudInit)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(script), "\n")
	python := strings.TrimPrefix(line, "#!")
	if python == line {
		t.Fatalf("%s has no #! line", cloudInit)
	}
	cmd := exec.Command(python, append([]string{"-c",
		"import importlib, sys\nfor m in sys.argv[1:]:\n    importlib.import_module(m)"}, modules...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("%s lists a module cloud-init does not have: %v\n%s", cfg, err, out)
	}
}

func TestBuildScriptValidatesInputs(t *testing.T) {
	const guest = "debian-bookworm"
	tests := []struct {
		name  string
		edit  func(t *testing.T, recipe string) // changes the copied recipe
		guest string
		env   []string
		want  []string // substrings of build.sh's error
	}{
		{name: "bad guest name", guest: "../etc", want: []string{`guest "../etc"`, "must match"}},
		{name: "unknown guest", guest: "no-such-guest", want: []string{`guest "no-such-guest"`, "no recipe directory"}},
		{name: "bad suite", edit: setKey("SUITE", "bookworm;rm"), want: []string{"SUITE", "bookworm;rm", "must match"}},
		{name: "bad variant", edit: setKey("VARIANT", "full"), want: []string{"VARIANT", `"full"`, "must match"}},
		{name: "bad mirror", edit: setKey("MIRROR", "ftp://x"), want: []string{"MIRROR", "ftp://x", "must match"}},
		{name: "bad mirror override", env: []string{"MICROVM_MIRROR=http://a b"}, want: []string{"MIRROR", "http://a b", "must match"}},
		{name: "bad disk size", edit: setKey("DISK_SIZE", "8T"), want: []string{"DISK_SIZE", "8T", "must match"}},
		{name: "cmdline without root label", edit: setKey("KERNEL_CMDLINE", "console=ttyS0 root=/dev/vda"), want: []string{"KERNEL_CMDLINE", "root=LABEL=rootfs"}},
		{name: "unknown key", edit: appendLine("recipe.conf", "COLOUR=blue"), want: []string{"unknown key COLOUR"}},
		{name: "not key=value", edit: appendLine("recipe.conf", "just words"), want: []string{`"just words"`, "KEY=VALUE"}},
		{name: "missing key", edit: setKey("UPGRADE", ""), want: []string{"key UPGRADE is missing"}},
		{name: "bad package name", edit: appendLine("packages", "Bad_Name"), want: []string{"packages", "Bad_Name", "not a Debian package name"}},
		{name: "symlink in recipe", edit: func(t *testing.T, recipe string) {
			if err := os.Symlink("/etc/passwd", filepath.Join(recipe, "rootfs", "link")); err != nil {
				t.Fatal(err)
			}
		}, want: []string{"symbolic links are not supported"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := recipeTree(t)
			if tt.edit != nil {
				tt.edit(t, filepath.Join(tree, "guests", guest))
			}
			g := tt.guest
			if g == "" {
				g = guest
			}
			out, stderr, err := printDir(t, tree, g, tt.env...)
			if err == nil {
				t.Fatalf("build.sh --print-dir %s succeeded (%s), want an error", g, out)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("build.sh error %q does not contain %q", strings.TrimSpace(stderr), w)
				}
			}
		})
	}
}

// setKey returns an edit that sets (or, with value "", removes) a
// recipe.conf key.
func setKey(key, value string) func(*testing.T, string) {
	return func(t *testing.T, recipe string) {
		t.Helper()
		p := filepath.Join(recipe, "recipe.conf")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, key+"=") {
				if value == "" {
					continue
				}
				line = key + "=" + value
			}
			lines = append(lines, line)
		}
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// appendLine returns an edit that appends a line to a recipe file.
func appendLine(file, line string) func(*testing.T, string) {
	return func(t *testing.T, recipe string) {
		t.Helper()
		f, err := os.OpenFile(filepath.Join(recipe, file), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString("\n" + line + "\n"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCacheKey(t *testing.T) {
	const guest = "debian-bookworm"
	base, stderr, err := printDir(t, recipeTree(t), guest)
	if err != nil {
		t.Fatalf("build.sh --print-dir: %v\n%s", err, stderr)
	}
	if want := "/cache-root/gitlab-runner-kubevirt/images/" + guest + "-"; !strings.HasPrefix(base, want) {
		t.Fatalf("output directory %q, want it under %q", base, want)
	}

	// The checkout's script and the copy Build runs must agree, or a Go
	// caller and `make image` would build twice.
	checkout, stderr, err := printDir(t, ".", guest)
	if err != nil {
		t.Fatalf("./build.sh --print-dir: %v\n%s", err, stderr)
	}
	if checkout != base {
		t.Errorf("checkout build.sh gives %s, the embedded copy %s: the embedded recipes are stale", checkout, base)
	}
	t.Setenv("XDG_CACHE_HOME", "/cache-root")
	t.Setenv("MICROVM_MIRROR", "")
	t.Setenv("MICROVM_SECURITY_MIRROR", "")
	viaGo, err := ImageDir(context.Background(), BuildOptions{Guest: guest})
	if err != nil {
		t.Fatal(err)
	}
	if viaGo != base {
		t.Errorf("ImageDir = %s, build.sh --print-dir = %s", viaGo, base)
	}

	tests := []struct {
		name    string
		edit    func(t *testing.T, tree string)
		env     []string
		changes bool
	}{
		{name: "unchanged copy", changes: false},
		{name: "file modes and times", changes: false, edit: func(t *testing.T, tree string) {
			p := filepath.Join(tree, "guests", guest, "packages")
			if err := os.Chmod(p, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(p, time.Unix(1e9, 0), time.Unix(1e9, 0)); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "package list", changes: true, edit: func(t *testing.T, tree string) {
			appendLine("packages", "less")(t, filepath.Join(tree, "guests", guest))
		}},
		{name: "overlay file", changes: true, edit: func(t *testing.T, tree string) {
			appendLine("rootfs/etc/hosts", "# changed")(t, filepath.Join(tree, "guests", guest))
		}},
		{name: "new overlay file", changes: true, edit: func(t *testing.T, tree string) {
			if err := os.WriteFile(filepath.Join(tree, "guests", guest, "rootfs", "etc", "motd"), []byte("hi\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "build script", changes: true, edit: func(t *testing.T, tree string) {
			f, err := os.OpenFile(filepath.Join(tree, "build.sh"), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString("# changed\n"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "mirror", changes: true, env: []string{"MICROVM_MIRROR=http://mirror.example.com/debian"}},
		{name: "security mirror", changes: true, env: []string{"MICROVM_SECURITY_MIRROR=http://mirror.example.com/debian-security"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tree := recipeTree(t)
			if tt.edit != nil {
				tt.edit(t, tree)
			}
			got, stderr, err := printDir(t, tree, guest, tt.env...)
			if err != nil {
				t.Fatalf("build.sh --print-dir: %v\n%s", err, stderr)
			}
			if changed := got != base; changed != tt.changes {
				t.Errorf("output directory %s (base %s): changed = %v, want %v", got, base, changed, tt.changes)
			}
		})
	}
}
