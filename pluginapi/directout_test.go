package pluginapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/internal/testrand"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// directHangGuard bounds waits that only end if the code under test works,
// so a regression fails instead of hanging. Not a performance assertion.
const directHangGuard = time.Minute

// directPlugin is a launched testdata/directplugin.
type directPlugin struct {
	p  *Plugin
	tr TransportPlugin
}

func launchDirectPlugin(t *testing.T, bin string) *directPlugin {
	t.Helper()
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	p, err := Launch(context.Background(), LaunchOptions{Path: bin, SHA256: sum[:], Env: []string{"TMPDIR=" + t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	tr, err := p.Transport()
	if err != nil {
		t.Fatal(err)
	}
	return &directPlugin{p: p, tr: tr}
}

// raw returns the generated client of the plugin's Transport service, to
// send what pluginapi's client never would.
func (d *directPlugin) raw(t *testing.T) pluginv1.TransportClient {
	t.Helper()
	c, ok := d.p.rpc.(*plugin.GRPCClient)
	if !ok {
		t.Fatalf("rpc is %T, want *plugin.GRPCClient", d.p.rpc)
	}
	return pluginv1.NewTransportClient(c.Conn)
}

func (d *directPlugin) exec(ctx context.Context, cmd string, stdout, stderr io.Writer) (*pluginv1.ExecExit, error) {
	return d.tr.Exec(ctx, &pluginv1.ExecStart{Target: &pluginv1.Target{Host: "h"}, Command: cmd}, ExecIO{Stdout: stdout, Stderr: stderr})
}

// fdCount returns the number of open descriptors of pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// pipe returns a pipe whose read end is drained into a buffer; wait closes
// the write end and returns everything read. It only returns once every
// copy of the write end (the plugin's included) is closed.
func pipe(t *testing.T) (w *os.File, wait func() []byte) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close(); _ = w.Close() })
	done := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	return w, func() []byte {
		t.Helper()
		_ = w.Close()
		select {
		case b := <-done:
			return b
		case <-time.After(directHangGuard):
			t.Fatal("no EOF on the output pipe: a copy of its write end is still open")
			return nil
		}
	}
}

// execRaw runs an Exec with start over the raw client and returns its exit
// or the stream's error.
func execRaw(ctx context.Context, rpc pluginv1.TransportClient, start *pluginv1.ExecStart) (*pluginv1.ExecExit, error) {
	stream, err := rpc.Exec(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pluginv1.ExecInput{Input: &pluginv1.ExecInput_Start{Start: start}}); err != nil {
		return nil, err
	}
	_ = stream.Send(&pluginv1.ExecInput{Input: &pluginv1.ExecInput_StdinClose{StdinClose: true}})
	for {
		msg, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		if exit := msg.GetExit(); exit != nil {
			return exit, nil
		}
	}
}

func TestDirectOutput(t *testing.T) {
	bin := filepath.Join(t.TempDir(), BinaryPrefix+"directplugin")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/directplugin").CombinedOutput(); err != nil {
		t.Fatalf("go build ./testdata/directplugin: %v\n%s", err, out)
	}
	ctx := context.Background()
	const directKind = "*pluginapi.directWriter *pluginapi.directWriter\n"
	const streamKind = "*pluginapi.outputWriter *pluginapi.outputWriter\n"

	t.Run("files take the direct path, other writers the stream", func(t *testing.T) {
		d := launchDirectPlugin(t, bin)
		w, wait := pipe(t)
		if _, err := d.exec(ctx, "kind", w, w); err != nil {
			t.Fatal(err)
		}
		if got := string(wait()); got != directKind {
			t.Errorf("with files: the plugin saw %q, want %q", got, directKind)
		}
		var out, errb bytes.Buffer
		if _, err := d.exec(ctx, "kind", &out, &errb); err != nil {
			t.Fatal(err)
		}
		if out.String() != streamKind {
			t.Errorf("with buffers: the plugin saw %q, want %q", out.String(), streamKind)
		}
		// Only one of the two a file: the stream.
		out.Reset()
		if _, err := d.exec(ctx, "kind", &out, os.Stderr); err != nil {
			t.Fatal(err)
		}
		if out.String() != streamKind {
			t.Errorf("with stdout a buffer: the plugin saw %q, want %q", out.String(), streamKind)
		}
	})

	t.Run("64 MiB byte-exact, all of it before the exit", func(t *testing.T) {
		d := launchDirectPlugin(t, bin)
		const n = 64 << 20
		want := sha256.Sum256(testrand.Bytes(n, 42))
		w, wait := pipe(t)
		exit, err := d.exec(ctx, fmt.Sprintf("bytes %d 42", n), w, os.Stderr)
		if err != nil || exit.GetCode() != 0 {
			t.Fatalf("exec: %v, %v", exit, err)
		}
		got := wait()
		if len(got) != n || sha256.Sum256(got) != want {
			t.Errorf("got %d bytes (sha256 %x), want %d (sha256 %x)", len(got), sha256.Sum256(got), n, want)
		}
	})

	t.Run("a regular file is complete when exec returns", func(t *testing.T) {
		d := launchDirectPlugin(t, bin)
		f, err := os.CreateTemp(t.TempDir(), "out")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		const n = 8<<20 + 3
		if _, err := d.exec(ctx, fmt.Sprintf("bytes %d 7", n), f, f); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, testrand.Bytes(n, 7)) {
			t.Errorf("right after exec returned the file holds %d bytes, not the %d written", len(got), n)
		}
	})

	t.Run("stdout and stderr keep their order", func(t *testing.T) {
		d := launchDirectPlugin(t, bin)
		w, wait := pipe(t)
		if _, err := d.exec(ctx, "interleave 2000", w, w); err != nil {
			t.Fatal(err)
		}
		var want strings.Builder
		for i := range 2000 {
			fmt.Fprintf(&want, "out %d\nerr %d\n", i, i)
		}
		if got := string(wait()); got != want.String() {
			t.Errorf("interleaved output out of order: got %d bytes, first difference at %d", len(got), firstDiff(got, want.String()))
		}
	})

	t.Run("a goroutine that outlives its exec cannot write", func(t *testing.T) {
		d := launchDirectPlugin(t, bin)
		w, wait := pipe(t)
		if _, err := d.exec(ctx, "late 1000", w, w); err != nil {
			t.Fatal(err)
		}
		// wait returns only once the plugin closed its copy: nothing can
		// arrive after it.
		got := wait()
		if len(got) < 1000 || !bytes.Equal(got[:1000], make([]byte, 1000)) {
			t.Fatalf("got %d bytes, want the 1000 written first", len(got))
		}
		if rest := strings.ReplaceAll(string(got[1000:]), "late\n", ""); rest != "" {
			t.Errorf("unexpected output after the 1000 bytes: %q", rest)
		}
	})

	t.Run("cancel ends the exec and releases the descriptors", func(t *testing.T) {
		d := launchDirectPlugin(t, bin)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := d.exec(cctx, "hang", w, w)
			errc <- err
		}()
		line := make([]byte, len("started\n"))
		if _, err := io.ReadFull(r, line); err != nil || string(line) != "started\n" {
			t.Fatalf("read %q, %v; want started", line, err)
		}
		cancel()
		select {
		case err := <-errc:
			if status.Code(err) != codes.Canceled && !errors.Is(err, context.Canceled) {
				t.Errorf("exec after cancel: %v, want Canceled", err)
			}
		case <-time.After(directHangGuard):
			t.Fatal("exec did not return after cancel")
		}
		_ = w.Close()
		eof := make(chan error, 1)
		go func() { _, err := io.ReadAll(r); eof <- err }()
		select {
		case <-eof:
		case <-time.After(directHangGuard):
			t.Fatal("the plugin kept the pipe open after the cancelled exec")
		}
	})

	t.Run("the core giving up revokes the descriptors at once", func(t *testing.T) {
		// linger keeps writing after its cancellation for as long as its
		// writes succeed: EOF on the pipe proves the plugin closed its
		// copy while the implementation still ran.
		d := launchDirectPlugin(t, bin)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := d.exec(cctx, "linger", w, w)
			errc <- err
		}()
		line := make([]byte, len("started\n"))
		if _, err := io.ReadFull(r, line); err != nil || string(line) != "started\n" {
			t.Fatalf("read %q, %v; want started", line, err)
		}
		cancel()
		select {
		case <-errc:
		case <-time.After(directHangGuard):
			t.Fatal("exec did not return after cancel")
		}
		_ = w.Close()
		eof := make(chan []byte, 1)
		go func() { b, _ := io.ReadAll(r); eof <- b }()
		select {
		case b := <-eof:
			if rest := strings.ReplaceAll(string(b), "after\n", ""); rest != "" {
				t.Errorf("unexpected output %q", rest)
			}
		case <-time.After(directHangGuard):
			t.Fatal("the plugin kept writing into the pipe after the core gave up")
		}
	})

	t.Run("tokens are single use, unknown ones refused", func(t *testing.T) {
		d := launchDirectPlugin(t, bin)
		rpc := d.raw(t)
		resp, err := rpc.OutputChannel(ctx, &pluginv1.OutputChannelRequest{})
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Dir(resp.GetPath()))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("output channel directory %s has mode %v, want 0700", filepath.Dir(resp.GetPath()), fi.Mode().Perm())
		}
		token, err := newOutputToken()
		if err != nil {
			t.Fatal(err)
		}
		w, wait := pipe(t)
		if err := sendOutputFiles(ctx, resp.GetPath(), token, w, w); err != nil {
			t.Fatal(err)
		}
		start := &pluginv1.ExecStart{Target: &pluginv1.Target{Host: "h"}, Command: "kind", OutputToken: token}
		if _, err := execRaw(ctx, rpc, start); err != nil {
			t.Fatalf("first use of the token: %v", err)
		}
		_, err = execRaw(ctx, rpc, start)
		if status.Code(err) != codes.InvalidArgument {
			t.Errorf("second use of the token: %v, want InvalidArgument", err)
		}
		if strings.Contains(fmt.Sprint(err), hex.EncodeToString(token)) {
			t.Errorf("the error shows the token: %v", err)
		}
		other, _ := newOutputToken()
		start.OutputToken = other
		if _, err := execRaw(ctx, rpc, start); status.Code(err) != codes.InvalidArgument {
			t.Errorf("unknown token: %v, want InvalidArgument", err)
		}
		start.OutputToken = []byte("short")
		if _, err := execRaw(ctx, rpc, start); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "output_token") {
			t.Errorf("short token: %v, want InvalidArgument naming output_token", err)
		}
		if got := string(wait()); got != directKind {
			t.Errorf("output of the one valid exec: %q, want %q", got, directKind)
		}
		// The client never lets a caller set the token.
		_, err = d.tr.Exec(ctx, &pluginv1.ExecStart{Target: &pluginv1.Target{Host: "h"}, Command: "kind", OutputToken: token}, ExecIO{})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "output_token") {
			t.Errorf("caller-set token: %v, want InvalidArgument naming output_token", err)
		}
	})

	t.Run("malformed registrations are refused", func(t *testing.T) {
		d := launchDirectPlugin(t, bin)
		resp, err := d.raw(t).OutputChannel(ctx, &pluginv1.OutputChannelRequest{})
		if err != nil {
			t.Fatal(err)
		}
		w, wait := pipe(t)
		if err := sendOutputFiles(ctx, resp.GetPath(), []byte("short"), w, w); err == nil {
			t.Error("a 5-byte token was acknowledged")
		}
		if err := sendOutputFiles(ctx, resp.GetPath(), make([]byte, outputTokenSize+1), w, w); err == nil {
			t.Error("a 17-byte token was acknowledged")
		}
		// The refused descriptors were closed.
		if got := wait(); len(got) != 0 {
			t.Errorf("unexpected output %q", got)
		}
	})

	t.Run("a broken channel falls back to the stream", func(t *testing.T) {
		d := launchDirectPlugin(t, bin)
		resp, err := d.raw(t).OutputChannel(ctx, &pluginv1.OutputChannelRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(resp.GetPath()); err != nil {
			t.Fatal(err)
		}
		w, wait := pipe(t)
		if _, err := d.exec(ctx, "kind", w, w); err != nil {
			t.Fatal(err)
		}
		if got := string(wait()); got != streamKind {
			t.Errorf("the plugin saw %q, want %q", got, streamKind)
		}
	})

	t.Run("no descriptor leaks", func(t *testing.T) {
		d := launchDirectPlugin(t, bin)
		pid := d.p.Pid()
		// One exec first: the channel's listener and gRPC's lazily opened
		// descriptors are part of the baseline.
		w, wait := pipe(t)
		if _, err := d.exec(ctx, "kind", w, w); err != nil {
			t.Fatal(err)
		}
		wait()
		base := fdCount(t, pid)
		rpc := d.raw(t)
		resp, err := rpc.OutputChannel(ctx, &pluginv1.OutputChannelRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for range 50 {
			w, wait := pipe(t)
			if _, err := d.exec(ctx, "bytes 70000 1", w, w); err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithCancel(ctx)
			go func() {
				time.Sleep(time.Millisecond)
				cancel()
			}()
			_, _ = d.exec(cctx, "hang", w, w)
			// Refused registrations and tokens.
			_ = sendOutputFiles(ctx, resp.GetPath(), []byte("bad"), w, w)
			_, _ = execRaw(ctx, rpc, &pluginv1.ExecStart{Target: &pluginv1.Target{Host: "h"}, Command: "kind", OutputToken: make([]byte, outputTokenSize)})
			wait()
		}
		// Descriptors are closed asynchronously (the side channel's
		// connections, a cancelled exec's handler), so poll.
		deadline := time.Now().Add(directHangGuard)
		for {
			n := fdCount(t, pid)
			if n <= base {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("plugin pid %d has %d descriptors after 50 rounds, %d before", pid, n, base)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// firstDiff returns the first index where a and b differ.
func firstDiff(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
