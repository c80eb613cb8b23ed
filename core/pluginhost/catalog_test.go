package pluginhost

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// catalogDir writes a plugin directory whose lock lists entries; each
// locked file is a script that creates marker if anything runs it.
func catalogDir(t *testing.T, marker string, entries ...Entry) string {
	t.Helper()
	dir := t.TempDir()
	lock := &Lock{APIVersion: LockAPIVersion}
	for _, e := range entries {
		path := writeScript(t, dir, strings.TrimPrefix(e.File, pluginapi.BinaryPrefix), "#!/bin/sh\ntouch "+marker+"\n")
		sum, err := FileSHA256(path)
		if err != nil {
			t.Fatal(err)
		}
		e.SHA256 = sum
		lock.Plugins = append(lock.Plugins, e)
	}
	if err := WriteLock(dir, lock); err != nil {
		t.Fatal(err)
	}
	return dir
}

func catalogEntry(name string, kind Kind, version string, shells ...string) Entry {
	e := Entry{File: pluginapi.BinaryPrefix + name, Name: name, Kind: kind, Version: version, APIVersions: []int{pluginapi.APIVersion1}}
	if kind == KindOS {
		e.OSFamily, e.Shells = "linux", shells
	}
	return e
}

func TestCatalog(t *testing.T) {
	linux := catalogEntry("linux", KindOS, "1.0.0", "bash")
	other := catalogEntry("other-linux", KindOS, "1.0.0", "bash")
	win := catalogEntry("win", KindOS, "2.0.0", "pwsh")
	ssh := catalogEntry("ssh", KindTransport, "1.0.0")
	tests := []struct {
		name    string
		entries []Entry
		tamper  func(t *testing.T, dir string)
		// exactly one of kind+lookup (ByName) or shell (ForShell)
		kind       Kind
		lookup     string
		shell      string
		wantFile   string
		wantStatus Status // of an *Error, or "" for a plain error
		wantErr    []string
	}{
		{name: "os plugin by name", entries: []Entry{linux, win, ssh}, kind: KindOS, lookup: "win", wantFile: win.File},
		{name: "transport by name", entries: []Entry{linux, ssh}, kind: KindTransport, lookup: "ssh", wantFile: ssh.File},
		{name: "os plugin for shell", entries: []Entry{linux, win, ssh}, shell: "pwsh", wantFile: win.File},
		{name: "unknown name", entries: []Entry{linux, ssh}, kind: KindTransport, lookup: "winrm",
			wantErr: []string{`no transport plugin named "winrm"`, "locked transport plugins: ssh", "plugins lock"}},
		{name: "a transport is not an os plugin", entries: []Entry{linux, ssh}, kind: KindOS, lookup: "ssh",
			wantErr: []string{`no os plugin named "ssh"`}},
		{name: "shell served by two plugins", entries: []Entry{linux, other}, shell: "bash",
			wantErr: []string{`shell "bash" is served by several os plugins (linux, other-linux); choose one by name`}},
		{name: "shell served by none", entries: []Entry{linux}, shell: "pwsh",
			wantErr: []string{`no os plugin in plugins.lock serves shell "pwsh"`}},
		{name: "locked file removed", entries: []Entry{linux}, shell: "bash", wantStatus: StatusMissing,
			tamper: func(t *testing.T, dir string) {
				if err := os.Remove(filepath.Join(dir, linux.File)); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: []string{linux.File, "no such file", "reinstall the plugin"}},
		{name: "locked file replaced by a directory", entries: []Entry{linux}, kind: KindOS, lookup: "linux", wantStatus: StatusNotRegular,
			tamper: func(t *testing.T, dir string) {
				path := filepath.Join(dir, linux.File)
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(path, 0o755); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: []string{linux.File, "is a directory, not a regular file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			marker := filepath.Join(t.TempDir(), "started")
			dir := catalogDir(t, marker, tt.entries...)
			if tt.tamper != nil {
				tt.tamper(t, dir)
			}
			cat := NewCatalog(dir, nil)
			var e Entry
			var err error
			if tt.shell != "" {
				e, err = cat.ForShell(tt.shell)
			} else {
				e, err = cat.ByName(tt.kind, tt.lookup)
			}
			if _, serr := os.Stat(marker); serr == nil {
				t.Error("the catalog ran a plugin binary")
			}
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("got %v, want an error", e)
				}
				containsAll(t, "error", err.Error(), tt.wantErr...)
				var he *Error
				if isHostErr := errors.As(err, &he); tt.wantStatus != "" && (!isHostErr || he.Status != tt.wantStatus) {
					t.Errorf("error %v: want status %s", err, tt.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatalf("lookup: %v", err)
			}
			if e.File != tt.wantFile {
				t.Errorf("entry %s, want file %s", e, tt.wantFile)
			}
		})
	}
}

func TestCatalogWithoutLock(t *testing.T) {
	_, err := NewCatalog(t.TempDir(), nil).ForShell("bash")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("error %v, want one wrapping fs.ErrNotExist", err)
	}
	containsAll(t, "error", err.Error(), "no plugins.lock", "run `gitlab-runner-kubevirt plugins lock`")
}
