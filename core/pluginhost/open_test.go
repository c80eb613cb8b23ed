package pluginhost

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// TestOpenRefusesFilesThatAreNotThere: Open checks the locked file with a
// stat before it starts anything; it never reads a file that is gone, a
// directory or a named pipe (reading a pipe would block the stage).
func TestOpenRefusesFilesThatAreNotThere(t *testing.T) {
	tests := []struct {
		name       string
		make       func(t *testing.T, path string)
		wantStatus Status
		want       []string
	}{
		{name: "removed after lock", make: func(t *testing.T, path string) {}, wantStatus: StatusMissing,
			want: []string{"no such file", "reinstall the plugin", "plugins lock"}},
		{name: "dangling symlink", make: func(t *testing.T, path string) {
			if err := os.Symlink(filepath.Join(filepath.Dir(path), "nowhere"), path); err != nil {
				t.Fatal(err)
			}
		}, wantStatus: StatusMissing, want: []string{"no such file", "reinstall the plugin"}},
		{name: "directory", make: func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, wantStatus: StatusNotRegular, want: []string{"is a directory, not a regular file"}},
		{name: "named pipe", make: func(t *testing.T, path string) {
			if err := syscall.Mkfifo(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, wantStatus: StatusNotRegular, want: []string{"is a named pipe, not a regular file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			// The entry locks a real plugin's digest; the file at its
			// name is then replaced by tt.make.
			real := install(t, t.TempDir(), "os", "test-os")
			e := handEntry(t, real, "test-os", KindOS)
			path := filepath.Join(dir, pluginapi.BinaryPrefix+"test-os")
			tt.make(t, path)
			h, _ := newHost(t, dir, startTimeout)
			p, err := h.Open(context.Background(), e)
			if err == nil {
				p.Close()
				t.Fatal("Open accepted it")
			}
			if got := StatusOf(err); got != tt.wantStatus {
				t.Errorf("status = %s, want %s (error: %v)", got, tt.wantStatus, err)
			}
			containsAll(t, "error", err.Error(), append(tt.want, path)...)
			if h.Running() != 0 {
				t.Errorf("host tracks %d plugins after a refused Open", h.Running())
			}
		})
	}
}

// TestClassifyUnreadableAtLaunch: if the file changes between Open's stat
// and go-plugin's checksum read (here: a directory, which Open's own check
// would have refused), go-plugin's "error verifying checksum" is still an
// *Error with a status and advice, produced by the real pluginapi.Launch.
func TestClassifyUnreadableAtLaunch(t *testing.T) {
	dir := filepath.Join(t.TempDir(), pluginapi.BinaryPrefix+"test-os")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := pluginapi.Launch(context.Background(), pluginapi.LaunchOptions{Path: dir, SHA256: make([]byte, 32), StartTimeout: startTimeout})
	if err == nil {
		t.Fatal("Launch started a directory")
	}
	got := classifyLaunch(dir, err, startTimeout)
	if st := StatusOf(got); st != StatusNotRegular {
		t.Errorf("status = %s, want %s (error: %v)", st, StatusNotRegular, got)
	}
	containsAll(t, "error", got.Error(), dir, "is a directory", "could not be read to verify its sha256")
}
