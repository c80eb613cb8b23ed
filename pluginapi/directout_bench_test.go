package pluginapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// BenchmarkExecSmallDirectVsStream measures the fixed cost of direct
// output on a tiny Exec (a run stage's case): the same command through
// the real testdata/directplugin binary, alternating an Exec with files
// (direct: one side-channel exchange per call) and one with buffers
// (output over the stream), and reports both medians and their
// difference.
//
//	go test ./pluginapi -run '^$' -bench ExecSmallDirectVsStream -benchtime 400x
func BenchmarkExecSmallDirectVsStream(b *testing.B) {
	bin := filepath.Join(b.TempDir(), BinaryPrefix+"directplugin")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/directplugin").CombinedOutput(); err != nil {
		b.Fatalf("go build ./testdata/directplugin: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		b.Fatal(err)
	}
	sum := sha256.Sum256(data)
	p, err := Launch(context.Background(), LaunchOptions{Path: bin, SHA256: sum[:], Env: []string{"TMPDIR=" + b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	tr, err := p.Transport()
	if err != nil {
		b.Fatal(err)
	}
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	ctx := context.Background()
	run := func(stdout, stderr io.Writer) float64 {
		t0 := time.Now()
		start := &pluginv1.ExecStart{Target: &pluginv1.Target{Host: "h"}, Command: "kind"}
		if _, err := tr.Exec(ctx, start, ExecIO{Stdout: stdout, Stderr: stderr}); err != nil {
			b.Fatal(err)
		}
		return float64(time.Since(t0).Nanoseconds()) / 1e3
	}
	var direct, stream []float64
	var buf bytes.Buffer
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		direct = append(direct, run(devnull, devnull))
		buf.Reset()
		stream = append(stream, run(&buf, &buf))
	}
	b.StopTimer()
	md, ms := medianOf(direct), medianOf(stream)
	b.ReportMetric(md, "direct_us")
	b.ReportMetric(ms, "stream_us")
	b.ReportMetric(md-ms, "direct_minus_stream_us")
	b.ReportMetric(0, "ns/op")
}

func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
