package pluginhost

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// BenchmarkOpen compares, alternately in every iteration so that machine
// noise hits both alike, two starts of a locked plugin:
//
//   - open-ms: Host.Open as it is: a stat, go-plugin's sha256 of the
//     binary right before exec, handshake, mTLS and GetInfo;
//   - hash-then-open-ms: the same plus the full FileSHA256 the host did
//     before launching until it left the check to go-plugin, i.e. the
//     previous cost of every plugin start.
//
// Each metric is the median start in milliseconds over the iterations:
//
//	go test -run '^$' -bench Open -benchtime 40x -count 3 ./core/pluginhost
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	install(b, dir, "os", "test-os")
	h, _ := newHost(b, dir, startTimeout)
	e := lockDir(b, h).Plugins[0]
	path := filepath.Join(dir, e.File)
	ctx := context.Background()
	start := func(prehash bool) time.Duration {
		t0 := time.Now()
		if prehash {
			if _, err := FileSHA256(path); err != nil {
				b.Fatal(err)
			}
		}
		p, err := h.Open(ctx, e)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		p.Close()
		return d
	}
	var open, prehashed []time.Duration
	for b.Loop() {
		prehashed = append(prehashed, start(true))
		open = append(open, start(false))
	}
	b.ReportMetric(medianMS(open), "open-ms")
	b.ReportMetric(medianMS(prehashed), "hash-then-open-ms")
	b.ReportMetric(0, "ns/op")
}

// medianMS returns the median of ds in milliseconds.
func medianMS(ds []time.Duration) float64 {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return float64(ds[len(ds)/2].Microseconds()) / 1000
}
