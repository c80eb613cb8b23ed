package main

import (
	"debug/elf"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Paths inside the image.
const (
	// installDir holds the core binary and its plugin directory.
	installDir = "opt/gitlab-runner-kubevirt"
	// coreName is the core binary's file name.
	coreName = "gitlab-runner-kubevirt"
	// pluginDirName is the plugin directory's name beside the core.
	pluginDirName = "plugins"
	// imageUser is the numeric user:group the image runs as (the
	// conventional "nonroot" ids of distroless images).
	imageUser = "65532:65532"
)

// platform is one target of the multi-arch image.
type platform struct {
	OS, Arch, Variant string
	// Machine is the ELF machine of binaries built for it.
	Machine elf.Machine
}

// String returns os/arch, as --platforms spells it.
func (p platform) String() string { return p.OS + "/" + p.Arch }

// supportedPlatforms returns the targets this builder knows the ELF
// machine of.
func supportedPlatforms() []platform {
	return []platform{
		{OS: "linux", Arch: "amd64", Machine: elf.EM_X86_64},
		{OS: "linux", Arch: "arm64", Variant: "v8", Machine: elf.EM_AARCH64},
	}
}

// options configure one image build. Every field is validated by
// [options.validate].
type options struct {
	// RepoRoot is the module root to build from.
	RepoRoot string
	// OutDir receives the archives (dist/).
	OutDir string
	// WorkDir holds binaries and layer files while building; empty means a
	// fresh temporary directory, removed afterwards.
	WorkDir string
	// Go is the go command.
	Go string
	// Version is the image and core version: an OCI tag.
	Version string
	// Revision is the VCS revision (a hex commit id) or "unknown".
	Revision string
	// Source is the repository URL (org.opencontainers.image.source).
	Source string
	// Licenses is an SPDX license expression.
	Licenses string
	// Created is the time stamped on files, configs and labels (keep it the
	// commit time for reproducible images).
	Created time.Time
	// Platforms are the image's platforms, e.g. linux/amd64.
	Platforms []platform
	// DockerArchives also writes one `docker load` tarball per platform.
	DockerArchives bool
	// ImageName is the repository name the docker tarballs are tagged with.
	ImageName string
}

var (
	// tagPattern is the OCI distribution spec's tag grammar.
	tagPattern = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	// revisionPattern accepts an abbreviated or full hex commit id.
	revisionPattern = regexp.MustCompile(`^[0-9a-f]{7,64}$`)
	// licensePattern accepts the characters of an SPDX license expression.
	licensePattern = regexp.MustCompile(`^[A-Za-z0-9.+\-() ]{1,200}$`)
	// imageNamePattern is a lower-case repository path with an optional
	// registry host (and port).
	imageNamePattern = regexp.MustCompile(`^([a-z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*$`)
)

// parsePlatforms parses a comma-separated --platforms value.
func parsePlatforms(s string) ([]platform, error) {
	var out []platform
	known := supportedPlatforms()
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		i := slices.IndexFunc(known, func(p platform) bool { return p.String() == f })
		if i < 0 {
			return nil, fmt.Errorf("--platforms %q: %q is not one of %s", s, f, platformList())
		}
		if slices.ContainsFunc(out, func(p platform) bool { return p.String() == f }) {
			return nil, fmt.Errorf("--platforms %q: %s is listed twice", s, f)
		}
		out = append(out, known[i])
	}
	return out, nil
}

func platformList() string {
	known := supportedPlatforms()
	s := make([]string, len(known))
	for i, p := range known {
		s[i] = p.String()
	}
	return strings.Join(s, ", ")
}

// validate checks every option; the error names each bad option, its value
// and the rule.
func (o *options) validate() error {
	var errs []error
	bad := func(name, value, rule string, args ...any) {
		errs = append(errs, fmt.Errorf("%s %q: %s", name, value, fmt.Sprintf(rule, args...)))
	}
	if o.RepoRoot == "" {
		bad("--repo", o.RepoRoot, "must be the repository root (the directory holding go.mod)")
	}
	if o.OutDir == "" {
		bad("--out", o.OutDir, "must be the output directory, e.g. dist")
	}
	if o.Go == "" {
		bad("--go", o.Go, "must name the go command")
	}
	if !tagPattern.MatchString(o.Version) {
		bad("--version", o.Version, "must be a valid image tag: 1 to 128 of [A-Za-z0-9_.-], not starting with . or -")
	}
	if o.Revision != "unknown" && !revisionPattern.MatchString(o.Revision) {
		bad("--revision", o.Revision, `must be a lower-case hex commit id (7 to 64 digits) or "unknown"`)
	}
	if u, err := url.Parse(o.Source); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("--source", o.Source, "must be an http(s) URL of the source repository")
	}
	if !licensePattern.MatchString(o.Licenses) {
		bad("--licenses", o.Licenses, "must be an SPDX license expression such as MIT")
	}
	if o.Created.IsZero() || o.Created.Before(time.Unix(0, 0)) {
		bad("--created", o.Created.String(), "must be a time at or after 1970-01-01T00:00:00Z")
	}
	if len(o.Platforms) == 0 {
		bad("--platforms", "", "must list at least one of %s", platformList())
	}
	if o.DockerArchives && !imageNamePattern.MatchString(o.ImageName) {
		bad("--image-name", o.ImageName, "must be a lower-case image repository such as registry.example.com/ci/gitlab-runner-kubevirt")
	}
	return errors.Join(errs...)
}

// labels are the OCI annotations put on each image config, manifest and
// the index.
func (o *options) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":       "gitlab-runner-kubevirt",
		"org.opencontainers.image.description": "GitLab Runner custom executor that runs every CI job in its own KubeVirt VM: core binary and first-party plugins under /" + installDir,
		"org.opencontainers.image.source":      o.Source,
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.revision":    o.Revision,
		"org.opencontainers.image.licenses":    o.Licenses,
		"org.opencontainers.image.created":     o.Created.UTC().Format(time.RFC3339),
	}
}

// archiveName is the OCI archive's file name.
func (o *options) archiveName() string {
	return "gitlab-runner-kubevirt-" + o.Version + "-oci.tar"
}
