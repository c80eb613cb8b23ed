// Command container builds the multi-arch gitlab-runner-kubevirt container
// image without Docker.
//
// It cross-compiles (CGO_ENABLED=0) the core and every plugin main package
// under ./plugins for each platform (linux/amd64 and linux/arm64 by
// default), writes each platform's plugins.lock (GetInfo from running this
// machine's build with `gitlab-runner-kubevirt plugins lock`, sha256 per
// platform), assembles one FROM-scratch image per platform with
// go-containerregistry and writes a multi-arch OCI image index as an OCI
// image-layout tarball:
//
//	dist/gitlab-runner-kubevirt-<version>-oci.tar
//
// Each image holds, owned by root and read-only to its user:
//
//	/opt/gitlab-runner-kubevirt/gitlab-runner-kubevirt          (0755, the entrypoint)
//	/opt/gitlab-runner-kubevirt/plugins/gitlab-runner-kubevirt-plugin-*  (0755)
//	/opt/gitlab-runner-kubevirt/plugins/plugins.lock            (0644)
//	/tmp                                                        (1777)
//
// and runs as user 65532:65532 with the OCI labels
// org.opencontainers.image.{title,description,source,version,revision,
// licenses,created}. Files, configs and archives carry --created as their
// time, so equal sources give equal digests.
//
// Usage, from the repository root:
//
//	go run ./hack/container --version v0.1.0
//	skopeo copy --all oci-archive:dist/gitlab-runner-kubevirt-v0.1.0-oci.tar docker://registry.example.com/ci/gitlab-runner-kubevirt:v0.1.0
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// defaultSource is the repository the image is built from.
const defaultSource = "https://github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "container:", err)
		os.Exit(1)
	}
}

// run parses the command line, fills defaults from git and the
// environment, and builds.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("container", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o         options
		platforms string
		created   string
	)
	fs.StringVar(&o.RepoRoot, "repo", "", "repository root (default: the module root of the current directory)")
	fs.StringVar(&o.OutDir, "out", "", "output directory (default: <repo>/dist)")
	fs.StringVar(&o.WorkDir, "work-dir", "", "keep binaries and layers here instead of a temporary directory")
	fs.StringVar(&o.Go, "go", "go", "the go command")
	fs.StringVar(&o.Version, "version", "", "image tag and core version (default: git describe --tags --always --dirty)")
	fs.StringVar(&o.Revision, "revision", "", "VCS revision for the labels (default: git rev-parse HEAD)")
	fs.StringVar(&o.Source, "source", defaultSource, "source repository URL for the labels")
	fs.StringVar(&o.Licenses, "licenses", "MIT", "SPDX license expression for the labels")
	fs.StringVar(&created, "created", "", "RFC 3339 time stamped on files and configs (default: $SOURCE_DATE_EPOCH, else the HEAD commit time)")
	fs.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated platforms")
	fs.BoolVar(&o.DockerArchives, "docker-archives", false, "also write one `docker load` tarball per platform")
	fs.StringVar(&o.ImageName, "image-name", "gitlab-runner-kubevirt", "repository the docker tarballs are tagged with (<name>:<version>-<arch>)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: container takes flags only", fs.Args())
	}
	var err error
	if o.RepoRoot == "" {
		if o.RepoRoot, err = moduleRoot(ctx, o.Go); err != nil {
			return err
		}
	}
	if o.OutDir == "" {
		o.OutDir = filepath.Join(o.RepoRoot, "dist")
	}
	if o.Version == "" {
		o.Version = gitOr(ctx, o.RepoRoot, "dev", "describe", "--tags", "--always", "--dirty")
	}
	if o.Revision == "" {
		o.Revision = gitOr(ctx, o.RepoRoot, "unknown", "rev-parse", "HEAD")
	}
	if o.Created, err = createdTime(ctx, o.RepoRoot, created, os.Getenv("SOURCE_DATE_EPOCH")); err != nil {
		return err
	}
	if o.Platforms, err = parsePlatforms(platforms); err != nil {
		return err
	}
	res, err := build(ctx, stderr, o)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, res.Archive)
	for _, d := range res.DockerArchives {
		fmt.Fprintln(stdout, d)
	}
	return nil
}

// moduleRoot returns the directory of the go.mod governing the current
// directory.
func moduleRoot(ctx context.Context, goCmd string) (string, error) {
	out, err := runCmd(ctx, "", nil, goCmd, "env", "GOMOD")
	if err != nil {
		return "", fmt.Errorf("find the repository root: %w; pass --repo", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("the current directory is not inside a Go module; run from the repository or pass --repo")
	}
	return filepath.Dir(gomod), nil
}

// gitOr returns git's trimmed output in dir, or fallback when git fails.
func gitOr(ctx context.Context, dir, fallback string, args ...string) string {
	out, err := runCmd(ctx, dir, nil, "git", args...)
	if s := strings.TrimSpace(string(out)); err == nil && s != "" {
		return s
	}
	return fallback
}

// createdTime picks the image time: --created (RFC 3339), else
// SOURCE_DATE_EPOCH (Unix seconds), else the HEAD commit time.
func createdTime(ctx context.Context, repo, flagValue, epoch string) (time.Time, error) {
	switch {
	case flagValue != "":
		t, err := time.Parse(time.RFC3339, flagValue)
		if err != nil {
			return time.Time{}, fmt.Errorf("--created %q: must be an RFC 3339 time such as 2026-01-02T15:04:05Z", flagValue)
		}
		return t, nil
	case epoch != "":
		secs, err := strconv.ParseInt(epoch, 10, 64)
		if err != nil || secs < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH %q: must be Unix seconds (a non-negative integer)", epoch)
		}
		return time.Unix(secs, 0).UTC(), nil
	}
	s := gitOr(ctx, repo, "", "log", "-1", "--format=%ct")
	secs, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("no --created, no SOURCE_DATE_EPOCH and no HEAD commit time in %s (git log: %q): pass --created", repo, s)
	}
	return time.Unix(secs, 0).UTC(), nil
}
