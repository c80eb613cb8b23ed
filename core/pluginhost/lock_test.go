package pluginhost

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const (
	shaA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	shaB = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
)

// validLock is a lock with an OS and a transport plugin, one field a line.
const validLock = `{
  "apiVersion": 1,
  "plugins": [
    {
      "file": "gitlab-runner-kubevirt-plugin-linux-cloudinit",
      "sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
      "name": "linux-cloudinit",
      "kind": "os",
      "version": "1.2.0",
      "apiVersions": [1],
      "osFamily": "linux",
      "shells": ["bash"],
      "capabilities": []
    },
    {
      "file": "gitlab-runner-kubevirt-plugin-transport-ssh",
      "sha256": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
      "name": "transport-ssh",
      "kind": "transport",
      "version": "0.3.0-rc.1+build.7",
      "apiVersions": [1],
      "capabilities": ["upload", "signal"]
    }
  ]
}
`

func TestParseLockValid(t *testing.T) {
	l, err := ParseLock([]byte(validLock))
	if err != nil {
		t.Fatalf("ParseLock: %v", err)
	}
	want := &Lock{APIVersion: 1, Plugins: []Entry{
		{File: "gitlab-runner-kubevirt-plugin-linux-cloudinit", SHA256: shaA, Name: "linux-cloudinit", Kind: KindOS, Version: "1.2.0",
			APIVersions: []int{1}, OSFamily: "linux", Shells: []string{"bash"}, Capabilities: []string{}},
		{File: "gitlab-runner-kubevirt-plugin-transport-ssh", SHA256: shaB, Name: "transport-ssh", Kind: KindTransport, Version: "0.3.0-rc.1+build.7",
			APIVersions: []int{1}, Capabilities: []string{"upload", "signal"}},
	}}
	if !reflect.DeepEqual(l, want) {
		t.Fatalf("ParseLock =\n%+v\nwant\n%+v", l, want)
	}
	// Canonical form round-trips.
	data, err := l.Marshal()
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	again, err := ParseLock(data)
	if err != nil {
		t.Fatalf("ParseLock(Marshal()): %v\n%s", err, data)
	}
	if !reflect.DeepEqual(again, want) {
		t.Fatalf("round trip =\n%+v\nwant\n%+v", again, want)
	}
}

// replaceLine returns validLock with the first line containing old
// replaced by repl.
func edit(t *testing.T, old, repl string) string {
	t.Helper()
	if !strings.Contains(validLock, old) {
		t.Fatalf("validLock has no %q", old)
	}
	return strings.Replace(validLock, old, repl, 1)
}

func TestParseLockRefuses(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string // substrings of the error
	}{
		{"empty", ``, []string{"line 1", "unexpected end of file"}},
		{"not an object", `[]`, []string{"line 1", "must be a JSON object, found an array"}},
		{"syntax error", "{\n  \"apiVersion\": 1,,\n}", []string{"line 2", "invalid JSON"}},
		{"syntax error in an entry", edit(t, `"apiVersions": [1],`, `"apiVersions": [1,],`), []string{"line 10", "invalid JSON"}},
		{"syntax error in a key", edit(t, `"osFamily": "linux",`, `osFamily: "linux",`), []string{"line 11", "invalid JSON"}},
		{"unknown top-level field", edit(t, `"apiVersion": 1,`, `"apiVersion": 1, "comment": "x",`), []string{"line 2", `unknown field "comment"`}},
		{"duplicate top-level field", edit(t, `"apiVersion": 1,`, `"apiVersion": 1, "apiVersion": 1,`), []string{"line 2", `field "apiVersion" appears twice`}},
		{"missing apiVersion", edit(t, `"apiVersion": 1,`, ``), []string{`"apiVersion" is required`}},
		{"missing plugins", "{\"apiVersion\": 1}", []string{`"plugins" is required`}},
		{"apiVersion 2", edit(t, `"apiVersion": 1,`, `"apiVersion": 2,`), []string{"line 2", `apiVersion "2"`, "reads lock format 1 only", "plugins lock"}},
		{"apiVersion string", edit(t, `"apiVersion": 1,`, `"apiVersion": "1",`), []string{"line 2", "apiVersion: must be an integer", `"1"`}},
		{"apiVersion float", edit(t, `"apiVersion": 1,`, `"apiVersion": 1.5,`), []string{"apiVersion: must be an integer"}},
		{"plugins not array", "{\"apiVersion\": 1, \"plugins\": {}}", []string{"plugins: must be a JSON array, found an object"}},
		{"entry not object", "{\"apiVersion\": 1, \"plugins\": [\"x\"]}", []string{"plugins[0]: must be a JSON object, found a string"}},
		{"unknown entry field", edit(t, `"osFamily": "linux",`, `"osFamily": "linux", "arch": "amd64",`), []string{"line 11", `plugins[0]: unknown field "arch"`}},
		{"duplicate entry field", edit(t, `"kind": "os",`, `"kind": "os", "kind": "transport",`), []string{"line 8", `plugins[0]: field "kind" appears twice`}},
		{"null value", edit(t, `"osFamily": "linux",`, `"osFamily": null,`), []string{"line 11", "plugins[0].osFamily: must be a string, not null"}},
		{"wrong type", edit(t, `"apiVersions": [1],`, `"apiVersions": ["1"],`), []string{"line 10", "plugins[0].apiVersions: must be an array of integers"}},
		{"missing sha256", edit(t, `"sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",`, ``), []string{`plugins[0]: field "sha256" is required`}},
		{"short sha256", edit(t, shaA, "abc"), []string{"line 6", `plugins[0].sha256 "abc"`, "64 lower-case hex digits"}},
		{"upper-case sha256", edit(t, shaA, strings.ToUpper(shaA)), []string{"plugins[0].sha256", "lower-case"}},
		{"file with a path", edit(t, `"file": "gitlab-runner-kubevirt-plugin-linux-cloudinit"`, `"file": "../gitlab-runner-kubevirt-plugin-x"`), []string{"line 5", `plugins[0].file "../gitlab-runner-kubevirt-plugin-x"`, "gitlab-runner-kubevirt-plugin-<name>"}},
		{"file name not a label", edit(t, `"file": "gitlab-runner-kubevirt-plugin-linux-cloudinit"`, `"file": "gitlab-runner-kubevirt-plugin-Linux_CI"`), []string{"plugins[0].file", "DNS-1123 label"}},
		{"name not a label", edit(t, `"name": "linux-cloudinit"`, `"name": "linux cloudinit"`), []string{"line 7", `plugins[0].name "linux cloudinit"`, "DNS-1123 label"}},
		{"unknown kind", edit(t, `"kind": "os"`, `"kind": "network"`), []string{"line 8", `plugins[0].kind "network"`, `must be "os" or "transport"`}},
		{"version with v", edit(t, `"version": "1.2.0"`, `"version": "v1.2.0"`), []string{"line 9", `plugins[0].version "v1.2.0"`, "without a leading v"}},
		{"version shorthand", edit(t, `"version": "1.2.0"`, `"version": "1.2"`), []string{`plugins[0].version "1.2"`, "MAJOR.MINOR.PATCH"}},
		{"version garbage", edit(t, `"version": "1.2.0"`, `"version": "latest"`), []string{`plugins[0].version "latest"`, "semantic version"}},
		{"no api versions", edit(t, `"apiVersions": [1],`, `"apiVersions": [],`), []string{"line 10", "plugins[0].apiVersions", "at least one"}},
		{"api version zero", edit(t, `"apiVersions": [1],`, `"apiVersions": [0],`), []string{"plugins[0].apiVersions[0] \"0\"", "between 1 and 65536"}},
		{"api version twice", edit(t, `"apiVersions": [1],`, `"apiVersions": [1, 1],`), []string{"plugins[0].apiVersions[1] \"1\": is listed twice"}},
		{"os without family", edit(t, `"osFamily": "linux",`, ``), []string{"plugins[0].osFamily", "OS family"}},
		{"os without shells", edit(t, `"shells": ["bash"],`, `"shells": [],`), []string{"line 12", "plugins[0].shells", "at least one shell"}},
		{"bad shell", edit(t, `"shells": ["bash"],`, `"shells": ["ba sh"],`), []string{"line 12", `plugins[0].shells[0] "ba sh"`, "DNS-1123"}},
		{"duplicate capability", edit(t, `["upload", "signal"]`, `["upload", "upload"]`), []string{`plugins[1].capabilities[1] "upload": is listed twice`}},
		{"transport with shells", edit(t, `"capabilities": ["upload", "signal"]`, `"capabilities": [], "shells": ["bash"]`), []string{"plugins[1].shells", "must be empty for a transport plugin"}},
		{"duplicate file", strings.Replace(validLock, "gitlab-runner-kubevirt-plugin-transport-ssh", "gitlab-runner-kubevirt-plugin-linux-cloudinit", 1), []string{"line 16", `plugins[1].file "gitlab-runner-kubevirt-plugin-linux-cloudinit": is already locked by plugins[0]`}},
		{"trailing data", validLock + "{}", []string{"line 26", "unexpected data after the lock object"}},
		{"two errors at once", edit(t, `"name": "linux-cloudinit",
      "kind": "os",`, `"name": "Linux",
      "kind": "vm",`), []string{"line 7", "line 8", "plugins[0].name", "plugins[0].kind"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := ParseLock([]byte(tt.input))
			if err == nil {
				t.Fatalf("ParseLock accepted it: %+v", l)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseLockSizeLimit(t *testing.T) {
	big := strings.Replace(validLock, `"capabilities": []`, `"capabilities": []`+strings.Repeat(" ", maxLockSize), 1)
	if _, err := ParseLock([]byte(big)); err == nil || !strings.Contains(err.Error(), "a lock file is at most") {
		t.Fatalf("ParseLock of %d bytes: error = %v, want a size error", len(big), err)
	}
}

func TestWriteAndReadLock(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadLock(dir); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "plugins lock") {
		t.Fatalf("ReadLock of an empty dir: error = %v, want ErrNotExist saying to run plugins lock", err)
	}
	l, err := ParseLock([]byte(validLock))
	if err != nil {
		t.Fatal(err)
	}
	// Write twice: the second write replaces the first atomically.
	for i := range 2 {
		if err := WriteLock(dir, l); err != nil {
			t.Fatalf("WriteLock #%d: %v", i, err)
		}
	}
	fi, err := os.Stat(filepath.Join(dir, LockFileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("plugins.lock mode = %v, want 0644", fi.Mode().Perm())
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("plugin dir holds %d files after two writes, want only plugins.lock (no temp files left)", len(entries))
	}
	got, err := ReadLock(dir)
	if err != nil {
		t.Fatalf("ReadLock: %v", err)
	}
	if !reflect.DeepEqual(got, l) {
		t.Fatalf("ReadLock =\n%+v\nwant\n%+v", got, l)
	}

	// An invalid lock is never written.
	bad := &Lock{APIVersion: 1, Plugins: []Entry{{File: "x"}}}
	if err := WriteLock(dir, bad); err == nil || !strings.Contains(err.Error(), "plugins[0].file") {
		t.Fatalf("WriteLock(invalid) error = %v, want it to name plugins[0].file", err)
	}
	if again, err := ReadLock(dir); err != nil || !reflect.DeepEqual(again, l) {
		t.Fatalf("after a refused write the lock changed: %v", err)
	}

	// A damaged lock names the file, the line and what to do.
	if err := os.WriteFile(filepath.Join(dir, LockFileName), []byte("{\n\"apiVersion\": 1,\n\"plugins\": [], \"x\": 1}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadLock(dir)
	for _, w := range []string{filepath.Join(dir, LockFileName), "line 3", `unknown field "x"`, "plugins lock"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("ReadLock of a damaged lock: error %v does not contain %q", err, w)
		}
	}
}

func TestEntryFromInfoVersionRules(t *testing.T) {
	tests := []struct {
		version string
		ok      bool
	}{
		{"1.0.0", true},
		{"0.0.1-alpha.1", true},
		{"10.20.30+meta", true},
		{"1.0.0-rc.1+build.5", true},
		{"1.0", false},
		{"1", false},
		{"v1.0.0", false},
		{"01.0.0", false},
		{"1.0.0-", false},
		{"", false},
		{strings.Repeat("1", 200) + ".0.0", false},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			got := versionRule(tt.version) == ""
			if got != tt.ok {
				t.Errorf("versionRule(%q) accepts = %v, want %v (%s)", tt.version, got, tt.ok, versionRule(tt.version))
			}
		})
	}
}
