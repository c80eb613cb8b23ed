package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// drainedPipe is an os.Pipe read by a goroutine: a file as the Exec's
// stdout or stderr, so pluginapi hands it to the plugin (direct output).
type drainedPipe struct {
	w    *os.File
	done chan []byte
}

func newDrainedPipe(t *testing.T) *drainedPipe {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	p := &drainedPipe{w: w, done: make(chan []byte, 1)}
	go func() {
		defer r.Close()
		b, _ := io.ReadAll(r)
		p.done <- b
	}()
	return p
}

// output closes the write end and returns everything read. EOF comes only
// once the plugin closed its copy too; the deadline only keeps a broken
// test from hanging.
func (p *drainedPipe) output(t *testing.T) string {
	t.Helper()
	_ = p.w.Close()
	select {
	case b := <-p.done:
		return string(b)
	case <-time.After(60 * time.Second):
		t.Fatal("no EOF on the output pipe: the plugin still holds a copy")
		return ""
	}
}

func TestPluginDirectOutput(t *testing.T) {
	_, target := startGuest(t, map[string]string{"kill_grace": "500ms"})
	p, tr, _ := launch(t)
	ctx := context.Background()

	t.Run("large output byte-exact", func(t *testing.T) {
		// seq 1 8000000 is 68.9 MB of stdout.
		const n = 8_000_000
		var want bytes.Buffer
		for i := 1; i <= n; i++ {
			want.WriteString(strconv.Itoa(i))
			want.WriteByte('\n')
		}
		out, errp := newDrainedPipe(t), newDrainedPipe(t)
		exit, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: target, Command: fmt.Sprintf("seq 1 %d", n)}, pluginapi.ExecIO{Stdout: out.w, Stderr: errp.w})
		if err != nil || exit.GetCode() != 0 {
			t.Fatalf("exec: %v, %v", exit, err)
		}
		got := out.output(t)
		if sha256.Sum256([]byte(got)) != sha256.Sum256(want.Bytes()) {
			t.Errorf("stdout: %d bytes, sha256 %x; want %d bytes, sha256 %x", len(got), sha256.Sum256([]byte(got)), want.Len(), sha256.Sum256(want.Bytes()))
		}
		if e := errp.output(t); e != "" {
			t.Errorf("stderr: %q, want nothing (the pid line must be filtered)", e)
		}
	})

	t.Run("stdout and stderr each complete and in order, pid line filtered", func(t *testing.T) {
		out, errp := newDrainedPipe(t), newDrainedPipe(t)
		cmd := `i=0; while [ $i -lt 300 ]; do echo "out $i"; echo "err $i" >&2; i=$((i+1)); done; exit 3`
		exit, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: target, Command: cmd}, pluginapi.ExecIO{Stdout: out.w, Stderr: errp.w})
		if err != nil || exit.GetCode() != 3 {
			t.Fatalf("exec: %v, %v; want exit 3", exit, err)
		}
		var wantOut, wantErr strings.Builder
		for i := range 300 {
			fmt.Fprintf(&wantOut, "out %d\n", i)
			fmt.Fprintf(&wantErr, "err %d\n", i)
		}
		if got := out.output(t); got != wantOut.String() {
			t.Errorf("stdout: %q..., want %d lines out 0..299", firstLines(got), 300)
		}
		if got := errp.output(t); got != wantErr.String() {
			t.Errorf("stderr: %q..., want %d lines err 0..299", firstLines(got), 300)
		}
	})

	t.Run("cancel ends the remote command and releases the descriptors", func(t *testing.T) {
		marker := uniqueSleep(t)
		out := newDrainedPipe(t)
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		done := make(chan execResult, 1)
		go func() {
			exit, err := tr.Exec(cctx, &pluginv1.ExecStart{Target: target, Command: "echo started; sleep " + marker}, pluginapi.ExecIO{Stdout: out.w, Stderr: out.w})
			done <- execResult{exit, err}
		}()
		waitFor(t, "the remote sleep to start", func() bool { return len(pgrep(t, "^sleep "+marker)) > 0 })
		cancel()
		if r := await(t, done); status.Code(r.err) != codes.Canceled {
			t.Fatalf("Exec after cancel = %v, %v; want Canceled", r.exit, r.err)
		}
		waitFor(t, "the remote sleep to be gone", func() bool { return len(pgrep(t, "sleep "+marker)) == 0 })
		if got := out.output(t); got != "started\n" {
			t.Errorf("output %q, want started", got)
		}
	})

	t.Run("no descriptor leaks", func(t *testing.T) {
		pid := p.Pid()
		count := func() int {
			ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
			if err != nil {
				t.Fatal(err)
			}
			return len(ents)
		}
		base := count()
		for i := range 30 {
			out := newDrainedPipe(t)
			exit, err := tr.Exec(ctx, &pluginv1.ExecStart{Target: target, Command: fmt.Sprintf("echo %d; echo e >&2; exit %d", i, i%2)}, pluginapi.ExecIO{Stdout: out.w, Stderr: out.w})
			if err != nil || exit.GetCode() != int32(i%2) {
				t.Fatalf("exec %d: %v, %v", i, exit, err)
			}
			if got := out.output(t); !strings.Contains(got, strconv.Itoa(i)+"\n") {
				t.Fatalf("exec %d: output %q", i, got)
			}
		}
		// The side channel's connections close asynchronously: poll.
		waitFor(t, "the plugin's descriptors to return to their count", func() bool { return count() <= base })
	})
}

func firstLines(s string) string {
	lines := strings.SplitN(s, "\n", 4)
	return strings.Join(lines[:min(3, len(lines))], "\n")
}
