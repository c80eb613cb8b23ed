package pluginhost

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// Candidate is a file in the plugin directory whose name starts with
// gitlab-runner-kubevirt-plugin-.
type Candidate struct {
	// File is the base name, Path the full path.
	File string
	Path string
	// Name is the part of File after the prefix.
	Name string
	// Status is empty if the file can be started; else StatusInvalidName,
	// StatusNotRegular or StatusNotExecutable, with the reason in Err.
	Status Status
	Err    error
}

// Startable reports whether the candidate passed the file checks.
func (c Candidate) Startable() bool { return c.Status == "" }

// Discover lists the plugin candidates in dir, sorted by file name. Files
// without the gitlab-runner-kubevirt-plugin- prefix (plugins.lock, a
// README) are ignored. A candidate that is not a regular executable file or
// whose name is not a DNS-1123 label is reported with a Status, not
// dropped. The error is about reading dir itself.
func Discover(dir string) ([]Candidate, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read plugin directory %s: %w", dir, err)
	}
	var out []Candidate
	for _, de := range entries {
		name, ok := strings.CutPrefix(de.Name(), pluginapi.BinaryPrefix)
		if !ok {
			continue
		}
		c := Candidate{File: de.Name(), Path: filepath.Join(dir, de.Name()), Name: name}
		c.Status, c.Err = checkCandidate(c)
		out = append(out, c)
	}
	return out, nil
}

// checkCandidate applies the file checks: name, file type (following
// symlinks), execute permission.
func checkCandidate(c Candidate) (Status, error) {
	if rule := fileRule(c.File); rule != "" {
		return StatusInvalidName, fmt.Errorf("file name %q: %s; rename it or remove it from the plugin directory", c.File, rule)
	}
	fi, err := os.Stat(c.Path)
	if err != nil {
		return StatusNotRegular, fmt.Errorf("%w; if it is a symlink, its target is gone", err)
	}
	if !fi.Mode().IsRegular() {
		return StatusNotRegular, fmt.Errorf("is a %s, not a regular file", fileType(fi.Mode()))
	}
	if fi.Mode().Perm()&0o111 == 0 {
		return StatusNotExecutable, fmt.Errorf("mode %s has no execute bit; chmod 0755 it if it is a plugin", fi.Mode().Perm())
	}
	return "", nil
}

// fileType names a non-regular file type.
func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}
