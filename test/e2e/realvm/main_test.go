package realvm_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/microvm"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/realvm"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/standin"
)

// The suite's shared environment: one control plane, one QEMU-mode
// stand-in. Tests run one after another; each leaves the namespace empty.
var (
	bed *realvm.Bed
	// binDir holds the binaries under test; consoleDir the guests'
	// console logs (its path is in every QEMU command line).
	binDir, consoleDir string
)

// brokenImage is a containerDisk image the bed maps to a copy of the guest
// image whose initrd is garbage: the kernel panics within seconds.
const brokenImage = "registry.example.com/gitlab-runner-kubevirt/broken-initrd:latest"

// standinLog keeps the stand-in's log for failing tests.
var standinLog e2etest.Log

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "realvm: %v\n", err)
		return 1
	}
	if err := realvm.CheckTools(); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	dir, _, cleanup, err := e2etest.BinDir(ctx, "realvm-bin-")
	defer cleanup()
	if err != nil {
		return fail(err)
	}
	binDir = dir
	work, err := os.MkdirTemp("", "realvm-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(work)
	consoleDir = filepath.Join(work, "consoles")
	brokenDir := filepath.Join(work, "broken-initrd")
	for _, d := range []string{consoleDir, brokenDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fail(err)
		}
	}
	img, err := microvm.Build(ctx, microvm.BuildOptions{Guest: realvm.Guest, Log: os.Stderr})
	if err != nil {
		return fail(fmt.Errorf("build the guest image (bash microvm/install-deps.sh installs what it needs): %w", err))
	}
	if err := writeBrokenImage(img, brokenDir); err != nil {
		return fail(err)
	}
	bed, err = realvm.Start(ctx, realvm.Options{
		BinDir:      binDir,
		ExtraImages: []standin.ImageMapping{{Image: brokenImage, Dir: brokenDir}},
		ConsoleDir:  consoleDir,
		Logf:        standinLog.Logf,
	})
	if err != nil {
		return fail(fmt.Errorf("start the environment: %w", err))
	}
	fmt.Fprintf(os.Stderr, "realvm: guest %s (kernel %s), accelerator %s: %s\n", img.Guest, img.KernelVersion, bed.Accel, bed.AccelReason)
	code := m.Run()
	if err := bed.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "realvm: stop the environment: %v\n", err)
		code = max(code, 1)
	}
	if pids := e2etest.PidsWithCmdline(consoleDir); len(pids) > 0 {
		fmt.Fprintf(os.Stderr, "realvm: QEMU processes %v outlived the environment\n", pids)
		code = max(code, 1)
	}
	return code
}

// writeBrokenImage makes dir an image like img whose initrd is 64 KiB of
// random bytes and whose kernel reboots 1 s after a panic (which QEMU's
// -no-reboot turns into an exit): a boot that fails in seconds, with a
// console full of kernel lines.
func writeBrokenImage(img *microvm.Image, dir string) error {
	raw, err := os.ReadFile(filepath.Join(img.Dir, "image.json"))
	if err != nil {
		return fmt.Errorf("broken image: %w", err)
	}
	var meta map[string]any
	if err := json.Unmarshal(raw, &meta); err != nil {
		return fmt.Errorf("broken image: %s: %w", filepath.Join(img.Dir, "image.json"), err)
	}
	meta["kernelCmdline"] = img.KernelCmdline + " panic=1"
	out, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("broken image: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "image.json"), out, 0o600); err != nil {
		return fmt.Errorf("broken image: %w", err)
	}
	for _, f := range []string{img.Disk, img.Kernel, img.Manifest} {
		if err := os.Symlink(f, filepath.Join(dir, filepath.Base(f))); err != nil {
			return fmt.Errorf("broken image: %w", err)
		}
	}
	junk := make([]byte, 64<<10)
	_, _ = rand.Read(junk)
	if err := os.WriteFile(filepath.Join(dir, filepath.Base(img.Initrd)), junk, 0o600); err != nil {
		return fmt.Errorf("broken image: %w", err)
	}
	return nil
}
