package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/google/uuid"
	"sigs.k8s.io/yaml"
)

// Datasource is the layout of the first-boot data: which files, under which
// names, on a volume with which label.
type Datasource string

// Datasources KubeVirt provides (cloudInitNoCloud, cloudInitConfigDrive).
const (
	// NoCloud is cloud-init's NoCloud datasource: an ISO 9660 volume
	// labelled "cidata" with user-data, meta-data (YAML or JSON) and
	// optionally network-config at its root.
	NoCloud Datasource = "NoCloud"
	// ConfigDrive is the OpenStack config drive (cloud-init's ConfigDrive
	// datasource, Cloudbase-Init on Windows): an ISO 9660 volume labelled
	// "config-2" with openstack/latest/user_data, meta_data.json and
	// optionally network_data.json.
	ConfigDrive Datasource = "ConfigDrive"
)

// Volume labels of the seed images, as KubeVirt writes them.
const (
	NoCloudLabel     = "cidata"
	ConfigDriveLabel = "config-2"
)

// MaxSeedFileSize bounds each seed file: what a Kubernetes Secret (where
// the runner keeps first-boot data) can hold.
const MaxSeedFileSize = 1 << 20

// Seed is first-boot data. UserData or NetworkData must be set.
type Seed struct {
	// Datasource is NoCloud (default) or ConfigDrive.
	Datasource Datasource
	// UserData is the user-data document (e.g. #cloud-config YAML). It may
	// hold secrets: it is never logged.
	UserData []byte
	// MetaData is NoCloud meta-data (a YAML or JSON mapping with a
	// non-empty instance-id) or ConfigDrive meta_data.json (a JSON object
	// with a non-empty uuid). Nil means MetaData{InstanceID: a fresh random
	// id}.Render(Datasource), so every boot is a first boot.
	MetaData []byte
	// NetworkData is NoCloud network-config (YAML) or ConfigDrive
	// network_data.json (JSON); nil leaves the guest's own network setup
	// (DHCP in microvm's images).
	NetworkData []byte
}

// datasource returns s.Datasource with the default applied.
func (s Seed) datasource() Datasource {
	if s.Datasource == "" {
		return NoCloud
	}
	return s.Datasource
}

// label returns the volume label of the seed image.
func (s Seed) label() string {
	if s.datasource() == ConfigDrive {
		return ConfigDriveLabel
	}
	return NoCloudLabel
}

// validate checks the seed. Errors name the field and the rule and never
// quote user-data, which may hold secrets.
func (s Seed) validate() error {
	ds := s.datasource()
	if ds != NoCloud && ds != ConfigDrive {
		return fmt.Errorf("Seed.Datasource %q: must be %s or %s", s.Datasource, NoCloud, ConfigDrive)
	}
	if len(s.UserData) == 0 && len(s.NetworkData) == 0 {
		return fmt.Errorf("Seed.UserData and Seed.NetworkData are both empty: a seed needs at least one of them")
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"Seed.UserData", s.UserData}, {"Seed.MetaData", s.MetaData}, {"Seed.NetworkData", s.NetworkData}} {
		if len(f.data) > MaxSeedFileSize {
			return fmt.Errorf("%s (%d bytes): must be at most %d bytes", f.name, len(f.data), MaxSeedFileSize)
		}
	}
	if s.MetaData != nil {
		if err := validateMetaData(ds, s.MetaData); err != nil {
			return err
		}
	}
	if len(s.NetworkData) > 0 {
		var m map[string]any
		var err error
		if ds == ConfigDrive {
			err = json.Unmarshal(s.NetworkData, &m)
		} else {
			err = yaml.Unmarshal(s.NetworkData, &m)
		}
		if err != nil || m == nil {
			return fmt.Errorf("Seed.NetworkData: must be a %s mapping for %s (%s): %v", format(ds), ds, s.fileName("network"), err)
		}
	}
	return nil
}

// validateMetaData checks that meta-data is a mapping with the key the
// datasource takes the instance id from.
func validateMetaData(ds Datasource, data []byte) error {
	var m map[string]any
	var err error
	key := "instance-id"
	if ds == ConfigDrive {
		key = "uuid"
		err = json.Unmarshal(data, &m)
	} else {
		err = yaml.Unmarshal(data, &m)
	}
	if err != nil || m == nil {
		return fmt.Errorf("Seed.MetaData: must be a %s mapping for %s: %v", format(ds), ds, err)
	}
	if id, ok := m[key].(string); !ok || id == "" {
		return fmt.Errorf("Seed.MetaData: must set %q to a non-empty string for %s", key, ds)
	}
	return nil
}

func format(ds Datasource) string {
	if ds == ConfigDrive {
		return "JSON"
	}
	return "YAML"
}

// fileName returns the path inside the seed image of one of the kinds
// "user", "meta" or "network".
func (s Seed) fileName(kind string) string {
	if s.datasource() == ConfigDrive {
		return map[string]string{
			"user":    "openstack/latest/user_data",
			"meta":    "openstack/latest/meta_data.json",
			"network": "openstack/latest/network_data.json",
		}[kind]
	}
	return map[string]string{"user": "user-data", "meta": "meta-data", "network": "network-config"}[kind]
}

// Files returns the files of the seed image by their path inside it, with
// meta-data generated when MetaData is nil. The result holds the seed's
// secrets.
func (s Seed) Files() (map[string][]byte, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	meta := s.MetaData
	if meta == nil {
		var err error
		if meta, err = (MetaData{InstanceID: NewInstanceID()}).Render(s.datasource()); err != nil {
			return nil, err
		}
	}
	files := map[string][]byte{
		s.fileName("user"): s.UserData,
		s.fileName("meta"): meta,
	}
	if len(s.NetworkData) > 0 {
		files[s.fileName("network")] = s.NetworkData
	}
	return files, nil
}

// WriteSeed writes seed as an ISO 9660 image to path (mode 0600), the way
// KubeVirt's virt-launcher does:
//
//	xorrisofs -output <path> -volid cidata|config-2 -joliet -rock -partition_cyl_align on <dir>
//
// The files are staged in a private temporary directory that is removed
// before WriteSeed returns. xorrisofs comes with the Debian package xorriso.
func WriteSeed(ctx context.Context, path string, seed Seed) error {
	files, err := seed.Files()
	if err != nil {
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	bin, err := exec.LookPath("xorrisofs")
	if err != nil {
		return fmt.Errorf("write seed %s: xorrisofs not found: install the Debian package xorriso", path)
	}
	staging, err := os.MkdirTemp("", "qemu-seed-")
	if err != nil {
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	defer os.RemoveAll(staging)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := filepath.Join(staging, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return fmt.Errorf("write seed %s: %w", path, err)
		}
		if err := os.WriteFile(p, files[name], 0o600); err != nil {
			return fmt.Errorf("write seed %s: stage %s: %w", path, name, err)
		}
	}

	tmp := path + ".tmp"
	cmd := exec.CommandContext(ctx, bin, "-quiet", "-output", tmp, "-volid", seed.label(),
		"-joliet", "-rock", "-partition_cyl_align", "on", staging)
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LC_ALL=C"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write seed %s: xorrisofs: %w: %s", path, err, strings.TrimSpace(out.String()))
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write seed %s: %w", path, err)
	}
	return nil
}

// MetaData is instance meta-data shaped like KubeVirt's.
type MetaData struct {
	// InstanceID identifies the instance; cloud-init runs its per-instance
	// modules once per id. Required.
	InstanceID string
	// Hostname is the guest's host name (RFC 1123); optional.
	Hostname string
}

var (
	instanceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
	hostLabelPattern  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
)

// Render marshals m as ds expects it: NoCloud meta-data
// {"instance-id", "local-hostname"}; ConfigDrive meta_data.json {"uuid",
// "instance_id", "instance-id", "hostname", "local-hostname"} (KubeVirt
// writes both spellings of the id for old and new readers).
func (m MetaData) Render(ds Datasource) ([]byte, error) {
	if !instanceIDPattern.MatchString(m.InstanceID) {
		return nil, fmt.Errorf("meta-data InstanceID %q: must match %s", truncate(m.InstanceID), instanceIDPattern)
	}
	if m.Hostname != "" {
		if len(m.Hostname) > 253 {
			return nil, fmt.Errorf("meta-data Hostname %q: must be at most 253 characters", truncate(m.Hostname))
		}
		for _, label := range strings.Split(m.Hostname, ".") {
			if !hostLabelPattern.MatchString(label) {
				return nil, fmt.Errorf("meta-data Hostname %q: label %q must be an RFC 1123 label (%s)", truncate(m.Hostname), truncate(label), hostLabelPattern)
			}
		}
	}
	var v any
	switch ds {
	case NoCloud, "":
		v = struct {
			InstanceID    string `json:"instance-id"`
			LocalHostname string `json:"local-hostname,omitempty"`
		}{m.InstanceID, m.Hostname}
	case ConfigDrive:
		v = struct {
			UUID           string `json:"uuid"`
			InstanceID     string `json:"instance_id"`
			LegacyID       string `json:"instance-id"`
			Hostname       string `json:"hostname,omitempty"`
			LegacyHostname string `json:"local-hostname,omitempty"`
		}{m.InstanceID, m.InstanceID, m.InstanceID, m.Hostname, m.Hostname}
	default:
		return nil, fmt.Errorf("meta-data datasource %q: must be %s or %s", ds, NoCloud, ConfigDrive)
	}
	return json.Marshal(v)
}

// NewInstanceID returns a random version 4 UUID.
func NewInstanceID() string { return uuid.NewString() }
