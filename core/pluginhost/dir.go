package pluginhost

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// DirEnv is the environment variable naming the plugin directory when
// --plugin-dir is not given.
const DirEnv = "GITLAB_RUNNER_KUBEVIRT_PLUGIN_DIR"

// DefaultDirName is the plugin directory's name beside the core executable.
const DefaultDirName = "plugins"

// Dir is a resolved plugin directory.
type Dir struct {
	// Path is the directory, made absolute.
	Path string
	// Source says how Path was chosen, for messages: "--plugin-dir",
	// "GITLAB_RUNNER_KUBEVIRT_PLUGIN_DIR" or "default: plugins/ beside
	// /usr/bin/gitlab-runner-kubevirt".
	Source string
}

// String returns the path and how it was chosen.
func (d Dir) String() string { return fmt.Sprintf("%s (from %s)", d.Path, d.Source) }

// ResolveDir picks the plugin directory: flagValue (--plugin-dir) if not
// empty, else $GITLAB_RUNNER_KUBEVIRT_PLUGIN_DIR, else plugins/ beside the
// running executable (symlinks resolved). The directory must exist and be
// readable; the error names the path, how it was chosen and what to do.
func ResolveDir(flagValue string) (Dir, error) {
	return resolveDir(flagValue, os.Getenv, os.Executable)
}

func resolveDir(flagValue string, getenv func(string) string, executable func() (string, error)) (Dir, error) {
	var d Dir
	switch {
	case flagValue != "":
		d = Dir{Path: flagValue, Source: "--plugin-dir"}
	case getenv(DirEnv) != "":
		d = Dir{Path: getenv(DirEnv), Source: DirEnv}
	default:
		exe, err := executable()
		if err != nil {
			return Dir{}, fmt.Errorf("find the plugin directory beside this executable: %w; pass --plugin-dir or set %s", err, DirEnv)
		}
		exe, err = filepath.EvalSymlinks(exe)
		if err != nil {
			return Dir{}, fmt.Errorf("find the plugin directory beside this executable: %w; pass --plugin-dir or set %s", err, DirEnv)
		}
		d = Dir{
			Path:   filepath.Join(filepath.Dir(exe), DefaultDirName),
			Source: fmt.Sprintf("default: %s/ beside %s", DefaultDirName, exe),
		}
	}
	abs, err := filepath.Abs(d.Path)
	if err != nil {
		return Dir{}, fmt.Errorf("plugin directory %q (from %s): %w", d.Path, d.Source, err)
	}
	d.Path = abs
	if err := checkDir(d); err != nil {
		return Dir{}, err
	}
	return d, nil
}

// checkDir makes sure d is a readable directory.
func checkDir(d Dir) error {
	fi, err := os.Stat(d.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("plugin directory %s does not exist; create it and install the gitlab-runner-kubevirt-plugin-* binaries there, or point --plugin-dir or %s at the right directory", d, DirEnv)
	case err != nil:
		return fmt.Errorf("plugin directory %s: %w; fix its permissions or point --plugin-dir or %s elsewhere", d, err, DirEnv)
	case !fi.IsDir():
		return fmt.Errorf("plugin directory %s is not a directory; point --plugin-dir or %s at the directory holding the gitlab-runner-kubevirt-plugin-* binaries", d, DirEnv)
	}
	f, err := os.Open(d.Path)
	if err == nil {
		_, err = f.ReadDir(1)
		f.Close()
		if errors.Is(err, io.EOF) {
			err = nil
		}
	}
	if err != nil {
		return fmt.Errorf("plugin directory %s is not readable: %w; let the user running gitlab-runner read it (e.g. chmod 0755)", d, err)
	}
	return nil
}
