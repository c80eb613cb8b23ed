package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// readISO reads a seed image back with tools independent of how it was
// written: blkid (what cloud-init uses to find the seed by label) for the
// file system type and label, and xorriso's extractor for the files under
// their Rock Ridge names (what the guest kernel shows).
func readISO(t *testing.T, iso string) (blkid map[string]string, files map[string][]byte) {
	t.Helper()
	blkidBin, err := exec.LookPath("blkid")
	if err != nil {
		blkidBin = "/usr/sbin/blkid"
		if _, err := os.Stat(blkidBin); err != nil {
			t.Fatal("blkid not found: install the Debian package util-linux")
		}
	}
	out, err := exec.Command(blkidBin, "-p", "-o", "export", iso).Output()
	if err != nil {
		t.Fatalf("blkid -p %s: %v", iso, err)
	}
	blkid = map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			blkid[k] = v
		}
	}

	xorriso, err := exec.LookPath("xorriso")
	if err != nil {
		t.Fatal("xorriso not found: install the Debian package xorriso (microvm/install-deps.sh installs it)")
	}
	dir := t.TempDir()
	if out, err := exec.Command(xorriso, "-osirrox", "on", "-indev", iso, "-extract", "/", dir).CombinedOutput(); err != nil {
		t.Fatalf("xorriso -extract %s: %v\n%s", iso, err, out)
	}
	files = map[string][]byte{}
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return blkid, files
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestWriteSeed(t *testing.T) {
	userData := []byte("#cloud-config\nssh_keys:\n  ed25519_private: |\n    SECRET\n")
	tests := []struct {
		name      string
		seed      Seed
		label     string
		want      map[string]string // file -> content; "" means check with checkMeta
		checkMeta func(t *testing.T, meta []byte)
	}{
		{
			name:  "NoCloud with all files",
			seed:  Seed{UserData: userData, MetaData: []byte("instance-id: i-1\nlocal-hostname: job-1\n"), NetworkData: []byte("version: 2\nethernets: {}\n")},
			label: "cidata",
			want: map[string]string{
				"user-data":      string(userData),
				"meta-data":      "instance-id: i-1\nlocal-hostname: job-1\n",
				"network-config": "version: 2\nethernets: {}\n",
			},
		},
		{
			name:  "NoCloud with generated meta-data",
			seed:  Seed{Datasource: NoCloud, UserData: userData},
			label: "cidata",
			want:  map[string]string{"user-data": string(userData), "meta-data": ""},
			checkMeta: func(t *testing.T, meta []byte) {
				var m map[string]string
				if err := json.Unmarshal(meta, &m); err != nil {
					t.Fatalf("meta-data %q: %v", meta, err)
				}
				if !uuidPattern.MatchString(m["instance-id"]) || len(m) != 1 {
					t.Errorf("generated meta-data %q, want only a random UUID instance-id", meta)
				}
			},
		},
		{
			name:  "ConfigDrive",
			seed:  Seed{Datasource: ConfigDrive, UserData: []byte("#ps1\nWrite-Host hi\n"), NetworkData: []byte(`{"links":[]}`)},
			label: "config-2",
			want: map[string]string{
				"openstack/latest/user_data":         "#ps1\nWrite-Host hi\n",
				"openstack/latest/meta_data.json":    "",
				"openstack/latest/network_data.json": `{"links":[]}`,
			},
			checkMeta: func(t *testing.T, meta []byte) {
				var m map[string]string
				if err := json.Unmarshal(meta, &m); err != nil {
					t.Fatalf("meta_data.json %q: %v", meta, err)
				}
				if !uuidPattern.MatchString(m["uuid"]) || m["instance_id"] != m["uuid"] || m["instance-id"] != m["uuid"] {
					t.Errorf("generated meta_data.json %q, want uuid, instance_id and instance-id set to one random UUID", meta)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iso := filepath.Join(t.TempDir(), "seed.iso")
			if err := WriteSeed(context.Background(), iso, tt.seed); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(iso)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("seed mode %o, want 0600 (it holds secrets)", fi.Mode().Perm())
			}
			blkid, files := readISO(t, iso)
			if blkid["TYPE"] != "iso9660" || blkid["LABEL"] != tt.label {
				t.Errorf("blkid: TYPE=%s LABEL=%s, want iso9660 labelled %s", blkid["TYPE"], blkid["LABEL"], tt.label)
			}
			if len(files) != len(tt.want) {
				t.Errorf("seed holds %d files %v, want %d", len(files), keys(files), len(tt.want))
			}
			for name, want := range tt.want {
				got, ok := files[name]
				switch {
				case !ok:
					t.Errorf("seed has no %s (has %v)", name, keys(files))
				case want == "":
					tt.checkMeta(t, got)
				case string(got) != want:
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "qemu-seed-*")); len(left) > 0 {
				for _, d := range left {
					if _, err := os.Stat(filepath.Join(d, "user-data")); err == nil {
						t.Errorf("staging directory %s with user-data left behind", d)
					}
				}
			}
		})
	}
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSeedRejectsInvalid(t *testing.T) {
	secret := []byte("#cloud-config\npassword: SECRET-MARKER\n")
	tests := []struct {
		name string
		seed Seed
		want []string
	}{
		{"unknown datasource", Seed{Datasource: "Azure", UserData: secret}, []string{"Seed.Datasource", `"Azure"`}},
		{"empty", Seed{}, []string{"Seed.UserData", "Seed.NetworkData", "empty"}},
		{"user-data too big", Seed{UserData: bytes.Repeat([]byte("a"), MaxSeedFileSize+1)}, []string{"Seed.UserData", "1048577 bytes", "at most 1048576"}},
		{"NoCloud meta-data not a mapping", Seed{UserData: secret, MetaData: []byte("- a\n- b\n")}, []string{"Seed.MetaData", "YAML mapping"}},
		{"NoCloud meta-data without instance-id", Seed{UserData: secret, MetaData: []byte("local-hostname: x\n")}, []string{"Seed.MetaData", `"instance-id"`}},
		{"ConfigDrive meta-data not JSON", Seed{Datasource: ConfigDrive, UserData: secret, MetaData: []byte("uuid: x\n")}, []string{"Seed.MetaData", "JSON"}},
		{"ConfigDrive meta-data without uuid", Seed{Datasource: ConfigDrive, UserData: secret, MetaData: []byte(`{"hostname":"x"}`)}, []string{"Seed.MetaData", `"uuid"`}},
		{"ConfigDrive network data not JSON", Seed{Datasource: ConfigDrive, UserData: secret, NetworkData: []byte("links: []\n")}, []string{"Seed.NetworkData", "JSON", "network_data.json"}},
		{"NoCloud network-config not a mapping", Seed{UserData: secret, NetworkData: []byte("just text")}, []string{"Seed.NetworkData", "YAML", "network-config"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			iso := filepath.Join(t.TempDir(), "seed.iso")
			err := WriteSeed(context.Background(), iso, tt.seed)
			if err == nil {
				t.Fatal("WriteSeed succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "SECRET-MARKER") {
				t.Errorf("error %q quotes the user-data", err)
			}
			if _, err := os.Stat(iso); !os.IsNotExist(err) {
				t.Errorf("a failed WriteSeed left %s", iso)
			}
		})
	}
}

func TestMetaDataRender(t *testing.T) {
	tests := []struct {
		name string
		md   MetaData
		ds   Datasource
		want string // JSON, or "" for an error
		err  []string
	}{
		{"NoCloud", MetaData{InstanceID: "i-1", Hostname: "job-42"}, NoCloud, `{"instance-id":"i-1","local-hostname":"job-42"}`, nil},
		{"NoCloud without hostname", MetaData{InstanceID: "i-1"}, NoCloud, `{"instance-id":"i-1"}`, nil},
		{"ConfigDrive", MetaData{InstanceID: "i-1", Hostname: "win.example.com"}, ConfigDrive,
			`{"uuid":"i-1","instance_id":"i-1","instance-id":"i-1","hostname":"win.example.com","local-hostname":"win.example.com"}`, nil},
		{"no instance id", MetaData{}, NoCloud, "", []string{"InstanceID", `""`, "must match"}},
		{"instance id with newline", MetaData{InstanceID: "i-1\nx: y"}, NoCloud, "", []string{"InstanceID", "must match"}},
		{"uppercase hostname", MetaData{InstanceID: "i-1", Hostname: "Job"}, NoCloud, "", []string{"Hostname", `"Job"`, "RFC 1123"}},
		{"hostname with underscore", MetaData{InstanceID: "i-1", Hostname: "job_1"}, NoCloud, "", []string{"Hostname", "job_1"}},
		{"hostname label too long", MetaData{InstanceID: "i-1", Hostname: strings.Repeat("a", 64)}, NoCloud, "", []string{"Hostname", "RFC 1123"}},
		{"unknown datasource", MetaData{InstanceID: "i-1"}, "Azure", "", []string{"datasource", `"Azure"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.md.Render(tt.ds)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("Render = %s, want an error", got)
				}
				for _, w := range tt.err {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("Render = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNewInstanceIDIsFresh(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := NewInstanceID()
		if !uuidPattern.MatchString(id) || seen[id] {
			t.Fatalf("NewInstanceID = %q: want a fresh version 4 UUID", id)
		}
		seen[id] = true
	}
}
