package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/bench"
)

// imageMeta is the part of microvm/'s image.json the report uses.
type imageMeta struct {
	Guest        string `json:"guest"`
	Hash         string `json:"hash"`
	DiskSize     int64  `json:"diskSize"`
	Packages     int    `json:"packages"`
	Built        string `json:"built"`
	BuildSeconds int    `json:"buildSeconds"`
	Kernel       string `json:"kernelVersion"`
}

// benchRealVM reads the cached guest image's build metadata. Booting it
// (31-70 s under TCG on these machines, DESIGN.md) is left to test/demo
// and the QEMU tests: it would take a large share of the time budget for
// one sample.
func (s *suite) benchRealVM(ctx context.Context) error {
	cache, err := os.UserCacheDir()
	if err != nil {
		return fmt.Errorf("cache dir: %w", err)
	}
	metas, _ := filepath.Glob(filepath.Join(cache, "gitlab-runner-kubevirt", "images", "*", "image.json"))
	sort.Strings(metas)
	body := "Read from the image cache's `image.json` (written by `make image`, microvm/build.sh); no boot is measured here: " +
		"a q35 boot under TCG takes 31-70 s on these machines (DESIGN.md), one sample would cost a tenth of the budget and " +
		"the boot is exercised by test/demo and the QEMU-mode stand-in tests.\n\n"
	if len(metas) == 0 {
		s.report.Add("Real VM image (9)", body+"No cached image found under "+filepath.Join(cache, "gitlab-runner-kubevirt", "images")+
			": run `make image` to build one (debootstrap, about 70 s to 3 min).\n")
		return nil
	}
	var rows [][]string
	for _, p := range metas {
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("read %s: %w", p, err)
		}
		var m imageMeta
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("parse %s: %w", p, err)
		}
		rows = append(rows, []string{m.Guest, m.Hash, fmt.Sprint(m.BuildSeconds), bench.F(float64(m.DiskSize) / (1 << 20)), fmt.Sprint(m.Packages), m.Kernel, m.Built})
		s.report.Set("image_build_seconds", float64(m.BuildSeconds))
		s.report.Set("image_disk_mb", float64(m.DiskSize)/(1<<20))
	}
	s.report.Add("Real VM image (9)", body+bench.Table([]string{"guest", "recipe hash", "build s", "qcow2 MB", "packages", "kernel", "built"}, rows)+
		"\nBoot-to-ready: not measured (see above); `run_overhead` etc. use the stand-in's host sshd instead of a guest.\n")
	return nil
}
