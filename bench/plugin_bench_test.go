package bench_test

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
)

// BenchmarkPluginStart measures pluginapi.Launch plus one GetInfo and the
// Close of every first-party plugin, built fresh with go build. Run it with
//
//	go test ./bench -run '^$' -bench PluginStart -cpuprofile cpu.out
//
// to profile the core's side of a plugin start.
func BenchmarkPluginStart(b *testing.B) {
	dir := b.TempDir()
	if _, err := e2e.BuildBinaries(context.Background(), dir); err != nil {
		b.Fatal(err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, e2e.PluginsDir, e2e.PluginPrefix+"*"))
	if err != nil || len(paths) == 0 {
		b.Fatalf("no plugins built into %s (err %v)", dir, err)
	}
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		sum := sha256.Sum256(data)
		b.Run(strings.TrimPrefix(filepath.Base(path), e2e.PluginPrefix), func(b *testing.B) {
			ctx := context.Background()
			for b.Loop() {
				p, err := pluginapi.Launch(ctx, pluginapi.LaunchOptions{Path: path, SHA256: sum[:]})
				if err != nil {
					b.Fatal(err)
				}
				info, err := p.Info()
				if err == nil {
					_, err = info.GetInfo(ctx)
				}
				p.Close()
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
