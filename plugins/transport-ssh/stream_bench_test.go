package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/transport-ssh/sshtransport"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// streamMiBEnv overrides the stream size of the stream benchmarks (MiB of
// stdout per run; default 256, as in make bench).
const streamMiBEnv = "STREAM_BENCH_MIB"

// streamBaselineEnv names another build of the plugin binary (e.g. of an
// earlier commit) that BenchmarkStreamVsOpenSSH runs as a third side, so
// a change is measured before and after in the same invocation.
const streamBaselineEnv = "STREAM_BENCH_BASELINE_PLUGIN"

// streamGuest is a real sshd with a key-login target and the same key and
// pinned host key as files for ssh(1).
type streamGuest struct {
	target     *pluginv1.Target
	srv        *sshd.Server
	keyFile    string
	knownHosts string
	size       int64
}

func newStreamGuest(b *testing.B) *streamGuest {
	b.Helper()
	mib := 256
	if v := os.Getenv(streamMiBEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 4096 {
			b.Fatalf("%s=%q: must be an integer number of MiB between 1 and 4096", streamMiBEnv, v)
		}
		mib = n
	}
	key, err := sshd.NewKeyPair()
	if err != nil {
		b.Fatal(err)
	}
	srv := sshd.StartForTest(b, sshd.Options{User: guestUser.name, AuthorizedKeys: []string{key.AuthorizedKey}})
	dir := b.TempDir()
	g := &streamGuest{
		target: &pluginv1.Target{
			Host: srv.Host(), Port: uint32(srv.Port()), Username: guestUser.name,
			PrivateKey: key.PrivateKeyPEM, HostKeys: []string{srv.HostPublicKey()},
		},
		srv:        srv,
		keyFile:    filepath.Join(dir, "id"),
		knownHosts: filepath.Join(dir, "known_hosts"),
		size:       int64(mib) << 20,
	}
	if err := os.WriteFile(g.keyFile, key.PrivateKeyPEM, 0o600); err != nil {
		b.Fatal(err)
	}
	line := fmt.Sprintf("[%s]:%d %s\n", srv.Host(), srv.Port(), srv.HostPublicKey())
	if err := os.WriteFile(g.knownHosts, []byte(line), 0o600); err != nil {
		b.Fatal(err)
	}
	return g
}

func (g *streamGuest) command() string { return fmt.Sprintf("head -c %d /dev/zero", g.size) }

func (g *streamGuest) mib() float64 { return float64(g.size) / (1 << 20) }

// countingWriter counts what reaches it and drops it, like > /dev/null.
type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n.Add(int64(len(p)))
	return len(p), nil
}

// countingPipe is an os.Pipe whose read end a goroutine drains and counts:
// a real file as stdout (what the core's stdout is under gitlab-runner),
// so the transport's direct output applies, and still a check that every
// byte arrived. Both sides of a comparison write into one.
type countingPipe struct {
	w    *os.File
	done chan int64
}

func newCountingPipe() (*countingPipe, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p := &countingPipe{w: w, done: make(chan int64, 1)}
	go func() {
		defer r.Close()
		buf := make([]byte, 256<<10)
		var n int64
		for {
			k, err := r.Read(buf)
			n += int64(k)
			if err != nil {
				p.done <- n
				return
			}
		}
	}()
	return p, nil
}

// close closes the write end and returns how many bytes were read; it
// returns only once every copy of the write end is closed.
func (p *countingPipe) close() int64 {
	_ = p.w.Close()
	return <-p.done
}

// execStreamFile runs the stream command through tr with a pipe as
// stdout (see countingPipe) and checks that every byte arrived.
func (g *streamGuest) execStreamFile(ctx context.Context, tr pluginapi.TransportPlugin) error {
	out, err := newCountingPipe()
	if err != nil {
		return err
	}
	exit, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: g.target, Command: g.command()}, pluginapi.ExecIO{Stdout: out.w, Stderr: os.Stderr})
	n := out.close()
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	if exit.GetCode() != 0 || exit.GetDisconnected() {
		return fmt.Errorf("exec: exit %v", exit)
	}
	if n != g.size {
		return fmt.Errorf("exec: %d bytes of stdout, want %d", n, g.size)
	}
	return nil
}

// execStream runs the stream command through tr and checks that every
// byte arrived.
func (g *streamGuest) execStream(ctx context.Context, tr pluginapi.TransportPlugin) error {
	var out countingWriter
	exit, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: g.target, Command: g.command()}, pluginapi.ExecIO{Stdout: &out, Stderr: os.Stderr})
	if err != nil {
		return fmt.Errorf("exec: %w", err)
	}
	if exit.GetCode() != 0 || exit.GetDisconnected() {
		return fmt.Errorf("exec: exit %v", exit)
	}
	if out.n.Load() != g.size {
		return fmt.Errorf("exec: %d bytes of stdout, want %d", out.n.Load(), g.size)
	}
	return nil
}

// ours launches the plugin binary at path, streams through it on a fresh
// connection and closes it: what one run stage of the core does.
func (g *streamGuest) ours(ctx context.Context, path string, sum []byte) (time.Duration, error) {
	t0 := time.Now()
	p, err := pluginapi.Launch(ctx, pluginapi.LaunchOptions{Path: path, SHA256: sum})
	if err != nil {
		return 0, err
	}
	defer p.Close()
	tr, err := p.Transport()
	if err != nil {
		return 0, err
	}
	if err := g.execStreamFile(ctx, tr); err != nil {
		return 0, err
	}
	p.Close()
	return time.Since(t0), nil
}

// openssh runs the same command with ssh(1), same key, same sshd, stdout
// into a countingPipe like ours.
func (g *streamGuest) openssh(ctx context.Context) (time.Duration, error) {
	out, err := newCountingPipe()
	if err != nil {
		return 0, err
	}
	cmd := exec.CommandContext(ctx, "ssh", "-F", "none",
		"-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
		"-o", "UserKnownHostsFile="+g.knownHosts, "-o", "IdentitiesOnly=yes",
		"-i", g.keyFile, "-p", strconv.Itoa(g.srv.Port()), "-l", guestUser.name,
		g.srv.Host(), g.command())
	cmd.Stdout = out.w
	cmd.Stderr = os.Stderr
	t0 := time.Now()
	err = cmd.Run()
	n := out.close()
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("ssh: %w (install Debian package openssh-client)", err)
	}
	if n != g.size {
		return 0, fmt.Errorf("ssh: %d bytes of stdout, want %d", n, g.size)
	}
	return d, nil
}

// sample is one side's run: throughput and the CPU it took.
type sample struct {
	mibPerSec float64
	cpuMs     float64
}

// cpuTime returns the CPU time (user + system) of this process and of its
// reaped children: the plugin (pluginapi's Close reaps it) and ssh(1).
func cpuTime(b *testing.B) time.Duration {
	var self, children syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children); err != nil {
		b.Fatal(err)
	}
	var d time.Duration
	for _, tv := range []syscall.Timeval{self.Utime, self.Stime, children.Utime, children.Stime} {
		d += time.Duration(tv.Nano())
	}
	return d
}

// measure runs one side and returns its throughput and CPU time.
func (g *streamGuest) measure(b *testing.B, run func() (time.Duration, error)) sample {
	b.Helper()
	cpu0 := cpuTime(b)
	d, err := run()
	if err != nil {
		b.Fatal(err)
	}
	return sample{mibPerSec: g.mib() / d.Seconds(), cpuMs: float64(cpuTime(b)-cpu0) / float64(time.Millisecond)}
}

// report adds the medians of one side's samples as metrics.
func report(b *testing.B, side string, ss []sample) (mibPerSec, cpuMs float64) {
	var rates, cpus []float64
	for _, s := range ss {
		rates = append(rates, s.mibPerSec)
		cpus = append(cpus, s.cpuMs)
	}
	mibPerSec, cpuMs = median(rates), median(cpus)
	b.ReportMetric(mibPerSec, side+"_MiB/s")
	b.ReportMetric(cpuMs, side+"_cpu_ms")
	return mibPerSec, cpuMs
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// BenchmarkStreamVsOpenSSH compares output throughput side by side: each
// iteration streams the same 256 MiB of stdout (head -c ... /dev/zero)
// once through the real plugin binary (launched with pluginapi.Launch, a
// fresh SSH connection, control over gRPC on go-plugin's mTLS socket) and
// once with OpenSSH's ssh(1), alternating so machine noise hits both
// alike. Both write into a pipe that this process drains and counts (a
// file, as the core's stdout is, so our side takes pluginapi's direct
// output: the plugin writes into the pipe itself). Both timings include the start and the
// login. It reports the medians in MiB/s and ours/OpenSSH as
// ratio_vs_openssh (the bench suite's stream_throughput_ratio_vs_openssh).
// With STREAM_BENCH_BASELINE_PLUGIN set it also runs that binary in turn
// and reports baseline_MiB/s and ours/baseline as speedup_vs_baseline.
//
//	go test ./plugins/transport-ssh -run '^$' -bench StreamVsOpenSSH -benchtime 5x
func BenchmarkStreamVsOpenSSH(b *testing.B) {
	g := newStreamGuest(b)
	ctx := context.Background()
	basePath := os.Getenv(streamBaselineEnv)
	var baseSum []byte
	if basePath != "" {
		data, err := os.ReadFile(basePath)
		if err != nil {
			b.Fatalf("%s=%q: must name a plugin binary: %v", streamBaselineEnv, basePath, err)
		}
		sum := sha256.Sum256(data)
		baseSum = sum[:]
	}
	var ours, base, theirs []sample
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ours = append(ours, g.measure(b, func() (time.Duration, error) { return g.ours(ctx, pluginPath, pluginSum) }))
		if basePath != "" {
			base = append(base, g.measure(b, func() (time.Duration, error) { return g.ours(ctx, basePath, baseSum) }))
		}
		theirs = append(theirs, g.measure(b, func() (time.Duration, error) { return g.openssh(ctx) }))
	}
	b.StopTimer()
	o, oCPU := report(b, "ours", ours)
	t, tCPU := report(b, "openssh", theirs)
	b.ReportMetric(o/t, "ratio_vs_openssh")
	b.ReportMetric(oCPU/tCPU, "cpu_ratio_vs_openssh")
	if len(base) > 0 {
		m, _ := report(b, "baseline", base)
		b.ReportMetric(o/m, "speedup_vs_baseline")
	}
	b.ReportMetric(0, "ns/op")
}

// BenchmarkStreamInProcess streams through the transport served
// in-process over real gRPC (plugintest: the same adapters, a Unix
// socket, no TLS), so that one -cpuprofile shows both the plugin side and
// the core side of the gRPC hop:
//
//	go test ./plugins/transport-ssh -run '^$' -bench StreamInProcess -benchtime 3x -cpuprofile /tmp/stream.pprof
func BenchmarkStreamInProcess(b *testing.B) {
	g := newStreamGuest(b)
	impl := sshtransport.New(sshtransport.Config{})
	b.Cleanup(impl.Close)
	tr := plugintest.Transport(b, impl)
	benchStreamDirect(b, g, tr)
}

// BenchmarkStreamSSHOnly calls the SSH transport directly, without gRPC:
// the ceiling of x/crypto/ssh on this machine.
//
//	go test ./plugins/transport-ssh -run '^$' -bench StreamSSHOnly -benchtime 3x
func BenchmarkStreamSSHOnly(b *testing.B) {
	g := newStreamGuest(b)
	impl := sshtransport.New(sshtransport.Config{})
	b.Cleanup(impl.Close)
	benchStreamDirect(b, g, impl)
}

func benchStreamDirect(b *testing.B, g *streamGuest, tr pluginapi.TransportPlugin) {
	ctx := context.Background()
	var ss []sample
	b.SetBytes(g.size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ss = append(ss, g.measure(b, func() (time.Duration, error) {
			t0 := time.Now()
			err := g.execStream(ctx, tr)
			return time.Since(t0), err
		}))
	}
	b.StopTimer()
	report(b, "ours", ss)
}
