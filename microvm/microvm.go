// Package microvm builds and finds the guest images gitlab-runner-kubevirt
// boots: Debian root file systems with cloud-init, sshd and git, as a
// compressed qcow2 plus a kernel and initrd for direct boot.
//
// The build itself is build.sh beside this file (see README.md); the
// script and the recipes under guests/ are embedded in this package, so
// [Build] works from any test or binary, whatever its working directory,
// and hashes exactly the inputs the script would hash when run from a
// checkout. A build with unchanged inputs is a cache hit.
//
// Building needs root and the Debian packages listed in install-deps.sh
// (debootstrap, e2fsprogs, qemu-utils, ...). A missing tool is an error
// naming its package.
package microvm

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// recipes holds build.sh and the guest recipes.
//
//go:embed build.sh all:guests
var recipes embed.FS

// Image is a built guest image: the output directory of build.sh.
type Image struct {
	// Dir is the image's cache directory.
	Dir string
	// Guest is the recipe name (e.g. "debian-bookworm"); Hash identifies
	// the build inputs.
	Guest string
	Hash  string
	// Disk is the root disk (DiskFormat "qcow2"): an ext4 file system
	// without a partition table, labelled RootLabel.
	Disk            string
	DiskFormat      string
	DiskSize        int64 // bytes on disk
	DiskVirtualSize int64 // bytes the guest sees
	RootLabel       string
	// Kernel and Initrd boot the disk directly with KernelCmdline.
	Kernel        string
	Initrd        string
	KernelVersion string
	KernelCmdline string
	// Manifest lists every installed package: name, version, architecture,
	// tab-separated, one per line.
	Manifest string
	// Suite, Variant, Arch and Mirror are the debootstrap settings.
	Suite   string
	Variant string
	Arch    string
	Mirror  string
	// Built is when the build finished; BuildSeconds is how long it took.
	Built        time.Time
	BuildSeconds int
}

// imageJSON is build.sh's image.json.
type imageJSON struct {
	Guest           string `json:"guest"`
	Hash            string `json:"hash"`
	Disk            string `json:"disk"`
	DiskFormat      string `json:"diskFormat"`
	DiskSize        int64  `json:"diskSize"`
	DiskVirtualSize int64  `json:"diskVirtualSize"`
	Kernel          string `json:"kernel"`
	Initrd          string `json:"initrd"`
	KernelVersion   string `json:"kernelVersion"`
	KernelCmdline   string `json:"kernelCmdline"`
	RootLabel       string `json:"rootLabel"`
	Manifest        string `json:"manifest"`
	Suite           string `json:"suite"`
	Variant         string `json:"variant"`
	Arch            string `json:"arch"`
	Mirror          string `json:"mirror"`
	Built           string `json:"built"`
	BuildSeconds    int    `json:"buildSeconds"`
}

var (
	guestPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{0,62}$`)
	// fileNamePattern: image.json names files inside the image directory.
	fileNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
)

// LoadImage reads the image in dir (its image.json) and checks that every
// file it names is there.
func LoadImage(dir string) (*Image, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("load image %s: %w", dir, err)
	}
	data, err := os.ReadFile(filepath.Join(abs, "image.json"))
	if err != nil {
		return nil, fmt.Errorf("load image %s: %w", dir, err)
	}
	var j imageJSON
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("load image %s: image.json: %w", dir, err)
	}
	if !guestPattern.MatchString(j.Guest) {
		return nil, fmt.Errorf("load image %s: image.json guest %q: must match %s", dir, j.Guest, guestPattern)
	}
	built, err := time.Parse(time.RFC3339, j.Built)
	if err != nil {
		return nil, fmt.Errorf("load image %s: image.json built %q: must be an RFC 3339 time", dir, j.Built)
	}
	if j.DiskFormat != "qcow2" {
		return nil, fmt.Errorf("load image %s: image.json diskFormat %q: must be qcow2", dir, j.DiskFormat)
	}
	img := &Image{
		Dir: abs, Guest: j.Guest, Hash: j.Hash, DiskFormat: j.DiskFormat,
		DiskSize: j.DiskSize, DiskVirtualSize: j.DiskVirtualSize, RootLabel: j.RootLabel,
		KernelVersion: j.KernelVersion, KernelCmdline: j.KernelCmdline,
		Suite: j.Suite, Variant: j.Variant, Arch: j.Arch, Mirror: j.Mirror, Built: built, BuildSeconds: j.BuildSeconds,
	}
	for _, f := range []struct {
		key  string
		name string
		dst  *string
	}{
		{"disk", j.Disk, &img.Disk},
		{"kernel", j.Kernel, &img.Kernel},
		{"initrd", j.Initrd, &img.Initrd},
		{"manifest", j.Manifest, &img.Manifest},
	} {
		if !fileNamePattern.MatchString(f.name) {
			return nil, fmt.Errorf("load image %s: image.json %s %q: must be a file name in the image directory (%s)", dir, f.key, f.name, fileNamePattern)
		}
		p := filepath.Join(abs, f.name)
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("load image %s: %s: %w", dir, f.key, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("load image %s: %s %s: must be a regular file", dir, f.key, p)
		}
		*f.dst = p
	}
	return img, nil
}

// Packages reads the image's manifest: package name -> version.
func (img *Image) Packages() (map[string]string, error) {
	data, err := os.ReadFile(img.Manifest)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	pkgs := map[string]string{}
	for i, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		fields := strings.Split(line, "\t")
		if len(fields) != 3 || fields[0] == "" || fields[1] == "" {
			return nil, fmt.Errorf("read manifest %s:%d: %q: must be name<TAB>version<TAB>architecture", img.Manifest, i+1, line)
		}
		pkgs[fields[0]] = fields[1]
	}
	return pkgs, nil
}

// Guests returns the names of the embedded recipes.
func Guests() []string {
	entries, _ := recipes.ReadDir("guests") // embedded: cannot fail
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names
}
