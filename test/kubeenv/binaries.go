package kubeenv

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Versions of the control plane binaries. They must match the pins at the top
// of hack/kube-binaries.sh (a test checks it).
const (
	// KubernetesVersion is the kube-apiserver version.
	KubernetesVersion = "v1.37.2"
	// EtcdVersion is the etcd version.
	EtcdVersion = "v3.6.16"
)

const (
	// BinariesDirEnv names the environment variable that points at a
	// directory holding etcd and kube-apiserver, overriding the cache.
	BinariesDirEnv = "KUBE_BINARIES_DIR"
	// BuildScript is the repository-relative path of the script that builds
	// and caches the binaries.
	BuildScript = "hack/kube-binaries.sh"
	// ModulePath is this repository's Go module path; [RepoRoot] looks for
	// the go.mod that declares it.
	ModulePath = "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt"
)

// Binaries locates the control plane executables.
type Binaries struct {
	// Dir is the directory that holds both binaries.
	Dir string
	// Etcd is the path of the etcd binary.
	Etcd string
	// APIServer is the path of the kube-apiserver binary.
	APIServer string
}

func binariesIn(dir string) (Binaries, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Binaries{}, fmt.Errorf("binaries dir: %w", err)
	}
	b := Binaries{
		Dir:       dir,
		Etcd:      filepath.Join(dir, "etcd"),
		APIServer: filepath.Join(dir, "kube-apiserver"),
	}
	for _, p := range []string{b.Etcd, b.APIServer} {
		fi, err := os.Stat(p)
		if err != nil {
			return b, fmt.Errorf("binary %s: %w", p, err)
		}
		if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return b, fmt.Errorf("binary %s is not an executable file", p)
		}
	}
	return b, nil
}

// DefaultBinariesDir returns the directory hack/kube-binaries.sh caches the
// binaries in: ${XDG_CACHE_HOME:-$HOME/.cache}/gitlab-runner-kubevirt/kube/
// <KubernetesVersion>-etcd<EtcdVersion>.
func DefaultBinariesDir() (string, error) {
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("locate the cache dir: %w", err)
		}
		cache = filepath.Join(home, ".cache")
	}
	return filepath.Join(cache, "gitlab-runner-kubevirt", "kube", KubernetesVersion+"-etcd"+EtcdVersion), nil
}

// FindBinaries returns the etcd and kube-apiserver to run. An explicit
// opts.BinariesDir or $KUBE_BINARIES_DIR must hold both. Otherwise the cache
// directory is used, and when the binaries are missing there FindBinaries
// runs hack/kube-binaries.sh (unless opts.NoBuild), streaming its progress to
// opts.BuildOutput.
func FindBinaries(ctx context.Context, opts Options) (Binaries, error) {
	if opts.BinariesDir != "" {
		b, err := binariesIn(opts.BinariesDir)
		if err != nil {
			return b, fmt.Errorf("Options.BinariesDir: %w", err)
		}
		return b, nil
	}
	if dir := os.Getenv(BinariesDirEnv); dir != "" {
		b, err := binariesIn(dir)
		if err != nil {
			return b, fmt.Errorf("$%s: %w", BinariesDirEnv, err)
		}
		return b, nil
	}
	dir, err := DefaultBinariesDir()
	if err != nil {
		return Binaries{}, err
	}
	if b, err := binariesIn(dir); err == nil {
		return b, nil
	}

	root, rootErr := RepoRoot()
	howto := "bash " + BuildScript + " (from the repository root)"
	if rootErr == nil {
		howto = "bash " + filepath.Join(root, filepath.FromSlash(BuildScript))
	}
	if opts.NoBuild || rootErr != nil {
		reason := "Options.NoBuild is set"
		if rootErr != nil {
			reason = rootErr.Error()
		}
		return Binaries{}, fmt.Errorf("etcd %s and kube-apiserver %s are not in %s and cannot be built here (%s): build them with %q (about 7 minutes cold), or set $%s",
			EtcdVersion, KubernetesVersion, dir, reason, howto, BinariesDirEnv)
	}

	built, err := runBuildScript(ctx, root, opts.BuildOutput)
	if err != nil {
		return Binaries{}, fmt.Errorf("build the control plane binaries with %q: %w", howto, err)
	}
	b, err := binariesIn(built)
	if err != nil {
		return b, fmt.Errorf("after %s: %w", BuildScript, err)
	}
	return b, nil
}

// runBuildScript runs hack/kube-binaries.sh and returns the directory it
// prints as its last stdout line.
func runBuildScript(ctx context.Context, root string, progress io.Writer) (string, error) {
	if progress == nil {
		progress = os.Stderr
	}
	script := filepath.Join(root, filepath.FromSlash(BuildScript))
	fmt.Fprintf(progress, "kubeenv: building etcd %s and kube-apiserver %s with %s (cached afterwards)\n", EtcdVersion, KubernetesVersion, script)
	cmd := exec.CommandContext(ctx, "bash", script)
	cmd.Dir = root
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = progress
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("run %s: %w", script, err)
	}
	var last string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			last = line
		}
	}
	if last == "" {
		return "", errors.New(script + " printed no output directory")
	}
	return last, nil
}

// RepoRoot returns the root of this repository: the nearest directory at or
// above the working directory whose go.mod declares [ModulePath].
func RepoRoot() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for dir := wd; ; {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && declaresModule(data, ModulePath) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod for %s at or above %s", ModulePath, wd)
		}
		dir = parent
	}
}

func declaresModule(gomod []byte, path string) bool {
	sc := bufio.NewScanner(bytes.NewReader(gomod))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "module" && strings.Trim(f[1], `"`) == path {
			return true
		}
	}
	return false
}
