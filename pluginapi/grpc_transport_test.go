package pluginapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/internal/testrand"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// hangGuard bounds waits that only end if the code under test works, so a
// regression fails with a message instead of hanging the test binary. It is
// not a performance assertion: every wait it guards normally ends at once.
const hangGuard = time.Minute

// event is one write observed by the client, to check ordering across
// stdout and stderr.
type event struct {
	stream string
	data   string
}

// recorder collects writes to stdout and stderr in the order they arrive.
type recorder struct {
	mu     sync.Mutex
	events []event
}

func (r *recorder) writer(stream string) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.events = append(r.events, event{stream: stream, data: string(p)})
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func startFor(command string) *pluginv1.ExecStart {
	return &pluginv1.ExecStart{Target: testTarget(), Command: command, Env: map[string]string{"A": "1"}, Workdir: "/w"}
}

func TestExecStartAndExitRoundTrip(t *testing.T) {
	want := startFor("make test")
	wantExit := &pluginv1.ExecExit{Code: 3, Signal: "TERM", Disconnected: true, Message: "connection lost"}
	var got *pluginv1.ExecStart
	tr := plugintest.Transport(t, &fakeTransport{exec: func(_ context.Context, s *pluginv1.ExecStart, _ pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
		got = s
		return wantExit, nil
	}})
	exit, err := tr.Exec(t.Context(), want, pluginapi.ExecIO{})
	if err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("implementation got start %v, want %v", got, want)
	}
	if !proto.Equal(exit, wantExit) {
		t.Errorf("Exec exit = %v, want %v", exit, wantExit)
	}
}

func TestExecOutputOrder(t *testing.T) {
	var want []event
	for i := range 300 {
		stream := "stdout"
		if i%3 == 1 || i%7 == 0 {
			stream = "stderr"
		}
		want = append(want, event{stream: stream, data: fmt.Sprintf("%s line %03d\n", stream, i)})
	}
	tr := plugintest.Transport(t, &fakeTransport{exec: func(_ context.Context, _ *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
		for _, e := range want {
			w := stdio.Stdout
			if e.stream == "stderr" {
				w = stdio.Stderr
			}
			if _, err := io.WriteString(w, e.data); err != nil {
				return nil, err
			}
		}
		return &pluginv1.ExecExit{}, nil
	}})
	var rec recorder
	if _, err := tr.Exec(t.Context(), startFor("x"), pluginapi.ExecIO{Stdout: rec.writer("stdout"), Stderr: rec.writer("stderr")}); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if len(rec.events) != len(want) {
		t.Fatalf("client saw %d writes, want %d", len(rec.events), len(want))
	}
	for i := range want {
		if rec.events[i] != want[i] {
			t.Fatalf("write %d = %+v, want %+v (order across stdout/stderr not kept)", i, rec.events[i], want[i])
		}
	}
}

func TestExecLargeStreams(t *testing.T) {
	const size = 32 << 20
	tests := []struct {
		name string
		// run produces the command's output from its stdin.
		run   func(stdio pluginapi.ExecIO) error
		stdin []byte
		want  []byte
	}{
		{
			name: "stdout 32 MiB in uneven writes",
			run: func(stdio pluginapi.ExecIO) error {
				data := testrand.Bytes(size, 1)
				for off, n := 0, 1; off < len(data); off, n = off+n, n*3%(1<<20)+1 {
					end := min(off+n, len(data))
					if _, err := stdio.Stdout.Write(data[off:end]); err != nil {
						return err
					}
				}
				return nil
			},
			want: testrand.Bytes(size, 1),
		},
		{
			// io.Copy takes the writer's ReadFrom, which sends straight
			// from its read buffer; uneven reads of up to 2 MiB cover
			// every way a read is cut into messages.
			name: "stdout 32 MiB copied from a reader",
			run: func(stdio pluginapi.ExecIO) error {
				if _, ok := stdio.Stdout.(io.ReaderFrom); !ok {
					return errors.New("stdout is no io.ReaderFrom: io.Copy would send one message per 32 KiB")
				}
				_, err := io.Copy(stdio.Stdout, &unevenReader{data: testrand.Bytes(size, 3)})
				return err
			},
			want: testrand.Bytes(size, 3),
		},
		{
			name: "stdin 32 MiB echoed",
			run: func(stdio pluginapi.ExecIO) error {
				_, err := io.Copy(stdio.Stdout, stdio.Stdin)
				return err
			},
			stdin: testrand.Bytes(size, 2),
			want:  testrand.Bytes(size, 2),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := plugintest.Transport(t, &fakeTransport{exec: func(_ context.Context, _ *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
				if err := tt.run(stdio); err != nil {
					return nil, err
				}
				return &pluginv1.ExecExit{Code: 0}, nil
			}})
			var stdout bytes.Buffer
			stdio := pluginapi.ExecIO{Stdout: &stdout}
			if tt.stdin != nil {
				stdio.Stdin = bytes.NewReader(tt.stdin)
			}
			if _, err := tr.Exec(t.Context(), startFor("x"), stdio); err != nil {
				t.Fatalf("Exec: %v", err)
			}
			if stdout.Len() != len(tt.want) {
				t.Fatalf("stdout has %d bytes, want %d", stdout.Len(), len(tt.want))
			}
			if got, want := sha256.Sum256(stdout.Bytes()), sha256.Sum256(tt.want); got != want {
				t.Errorf("stdout sha256 %x, want %x: content changed in transit", got, want)
			}
		})
	}
}

// unevenReader returns data in reads of changing sizes, up to 2 MiB.
type unevenReader struct {
	data []byte
	n    int
}

func (r *unevenReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	r.n = r.n*5%(2<<20) + 1
	n := copy(p[:min(len(p), r.n)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestExecOutputNotHeldBack checks that output copied from a reader leaves
// as soon as a read returns it: the implementation writes the next line
// only after the client has seen the previous one, so output held back to
// fill a message would hang the test.
func TestExecOutputNotHeldBack(t *testing.T) {
	const lines = 20
	pr, pw := io.Pipe()
	tr := plugintest.Transport(t, &fakeTransport{exec: func(_ context.Context, _ *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
		_, err := io.Copy(stdio.Stdout, pr)
		return &pluginv1.ExecExit{}, err
	}})
	seen := make(chan string, lines)
	go func() {
		defer pw.Close()
		for i := range lines {
			if _, err := fmt.Fprintf(pw, "line %d\n", i); err != nil {
				return
			}
			select {
			case <-seen:
			case <-time.After(hangGuard):
				_ = pw.CloseWithError(fmt.Errorf("the client did not see line %d", i))
				return
			}
		}
	}()
	var got []string
	stdout := writerFunc(func(p []byte) (int, error) {
		got = append(got, string(p))
		seen <- string(p)
		return len(p), nil
	})
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	if _, err := tr.Exec(ctx, startFor("x"), pluginapi.ExecIO{Stdout: stdout}); err != nil {
		t.Fatalf("Exec: %v (output held back?)", err)
	}
	if len(got) != lines {
		t.Fatalf("client saw %d writes %q, want one per line", len(got), got)
	}
	for i, g := range got {
		if want := fmt.Sprintf("line %d\n", i); g != want {
			t.Errorf("write %d = %q, want %q", i, g, want)
		}
	}
}

func TestExecStdin(t *testing.T) {
	tests := []struct {
		name  string
		stdin io.Reader
		want  string
	}{
		{name: "nil stdin is closed at once", stdin: nil, want: ""},
		{name: "empty", stdin: strings.NewReader(""), want: ""},
		{name: "text then close", stdin: strings.NewReader("hello\nworld\n"), want: "hello\nworld\n"},
		{name: "one byte at a time", stdin: iotest.OneByteReader(strings.NewReader("abc")), want: "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := plugintest.Transport(t, &fakeTransport{exec: func(_ context.Context, _ *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
				// Reading to EOF only ends if the client's close arrives.
				b, err := io.ReadAll(stdio.Stdin)
				if err != nil {
					return nil, err
				}
				_, err = stdio.Stdout.Write(b)
				return &pluginv1.ExecExit{Code: int32(len(b))}, err
			}})
			ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
			defer cancel()
			var stdout bytes.Buffer
			exit, err := tr.Exec(ctx, startFor("cat"), pluginapi.ExecIO{Stdin: tt.stdin, Stdout: &stdout})
			if err != nil {
				t.Fatalf("Exec: %v (stdin close not forwarded?)", err)
			}
			if stdout.String() != tt.want {
				t.Errorf("echoed stdin = %q, want %q", stdout.String(), tt.want)
			}
			if int(exit.GetCode()) != len(tt.want) {
				t.Errorf("implementation read %d bytes, want %d", exit.GetCode(), len(tt.want))
			}
		})
	}
}

func TestExecStdinErrorClosesStdin(t *testing.T) {
	tr := plugintest.Transport(t, &fakeTransport{exec: func(_ context.Context, _ *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
		b, err := io.ReadAll(stdio.Stdin)
		if err != nil {
			return nil, err
		}
		_, err = stdio.Stdout.Write(b)
		return &pluginv1.ExecExit{}, err
	}})
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	var stdout bytes.Buffer
	stdin := io.MultiReader(strings.NewReader("partial"), iotest.ErrReader(errors.New("local file vanished")))
	if _, err := tr.Exec(ctx, startFor("cat"), pluginapi.ExecIO{Stdin: stdin, Stdout: &stdout}); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	if stdout.String() != "partial" {
		t.Errorf("remote saw stdin %q, want %q then EOF", stdout.String(), "partial")
	}
}

func TestExecSignals(t *testing.T) {
	tests := []struct {
		name    string
		signals []string
	}{
		{name: "one", signals: []string{"KILL"}},
		{name: "in order", signals: []string{"INT", "TERM", "KILL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := plugintest.Transport(t, &fakeTransport{exec: func(ctx context.Context, _ *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
				var got []string
				for {
					select {
					case name := <-stdio.Signals:
						got = append(got, name)
						if name == "KILL" {
							_, err := io.WriteString(stdio.Stdout, strings.Join(got, ","))
							return &pluginv1.ExecExit{Signal: name}, err
						}
					case <-ctx.Done():
						return nil, ctx.Err()
					}
				}
			}})
			ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
			defer cancel()
			signals := make(chan string, len(tt.signals))
			for _, s := range tt.signals {
				signals <- s
			}
			var stdout bytes.Buffer
			exit, err := tr.Exec(ctx, startFor("sleep 600"), pluginapi.ExecIO{Stdout: &stdout, Signals: signals})
			if err != nil {
				t.Fatalf("Exec: %v (signals not forwarded?)", err)
			}
			if got, want := stdout.String(), strings.Join(tt.signals, ","); got != want {
				t.Errorf("implementation received signals %q, want %q", got, want)
			}
			if exit.GetSignal() != "KILL" {
				t.Errorf("exit signal = %q, want KILL", exit.GetSignal())
			}
		})
	}
}

func TestExecCancellationReachesImplementation(t *testing.T) {
	implErr := make(chan error, 1)
	tr := plugintest.Transport(t, &fakeTransport{exec: func(ctx context.Context, _ *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
		if _, err := io.WriteString(stdio.Stdout, "started\n"); err != nil {
			return nil, err
		}
		select {
		case <-ctx.Done():
			implErr <- ctx.Err()
			return nil, ctx.Err()
		case <-time.After(hangGuard):
			implErr <- errors.New("the implementation's ctx was never cancelled")
			return &pluginv1.ExecExit{}, nil
		}
	}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Cancel as soon as the command has provably started.
	stdout := writerFunc(func(p []byte) (int, error) {
		if strings.Contains(string(p), "started") {
			cancel()
		}
		return len(p), nil
	})
	_, err := tr.Exec(ctx, startFor("sleep 600"), pluginapi.ExecIO{Stdout: stdout})
	if status.Code(err) != codes.Canceled {
		t.Errorf("Exec after cancel = %v, want code Canceled", err)
	}
	if err := <-implErr; !errors.Is(err, context.Canceled) {
		t.Errorf("implementation's ctx: %v, want context.Canceled", err)
	}
}

func TestExecErrors(t *testing.T) {
	tests := []struct {
		name     string
		impl     func(context.Context, *pluginv1.ExecStart, pluginapi.ExecIO) (*pluginv1.ExecExit, error)
		start    *pluginv1.ExecStart
		wantCode codes.Code
		wantMsg  string
		wantCall bool
	}{
		{
			name:     "implementation refuses input",
			impl:     refuseExec(pluginapi.InvalidInput("workdir", "../x", "must be absolute")),
			start:    startFor("x"),
			wantCode: codes.InvalidArgument,
			wantMsg:  `workdir "../x": must be absolute`,
			wantCall: true,
		},
		{
			name:     "implementation cannot start",
			impl:     refuseExec(status.Error(codes.Unavailable, "dial 10.0.0.7:22: connection refused")),
			start:    startFor("x"),
			wantCode: codes.Unavailable,
			wantMsg:  "dial 10.0.0.7:22: connection refused",
			wantCall: true,
		},
		{
			name:     "no exit and no error",
			impl:     refuseExec(nil),
			start:    startFor("x"),
			wantCode: codes.Internal,
			wantMsg:  "exec: plugin returned no exit status",
			wantCall: true,
		},
		{
			name:     "start without target",
			impl:     refuseExec(errors.New("must not be called")),
			start:    &pluginv1.ExecStart{Command: "x"},
			wantCode: codes.InvalidArgument,
			wantMsg:  "exec: the first message must be a start with a target",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			impl := &fakeTransport{exec: tt.impl}
			tr := plugintest.Transport(t, impl)
			exit, err := tr.Exec(t.Context(), tt.start, pluginapi.ExecIO{})
			if err == nil {
				t.Fatalf("Exec = %v, want an error", exit)
			}
			if status.Code(err) != tt.wantCode || pluginapi.ErrorMessage(err) != tt.wantMsg {
				t.Errorf("Exec error = %v, want code %v message %q", err, tt.wantCode, tt.wantMsg)
			}
			if called := impl.calls.Load() > 0; called != tt.wantCall {
				t.Errorf("implementation called = %v, want %v", called, tt.wantCall)
			}
		})
	}
}

func refuseExec(err error) func(context.Context, *pluginv1.ExecStart, pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
	return func(context.Context, *pluginv1.ExecStart, pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
		return nil, err
	}
}

func TestWaitReady(t *testing.T) {
	tests := []struct {
		name         string
		target       *pluginv1.Target
		impl         func(context.Context, *pluginv1.Target) (uint32, error)
		wantAttempts uint32
		wantCode     codes.Code
	}{
		{
			name:         "attempts cross",
			target:       testTarget(),
			impl:         func(context.Context, *pluginv1.Target) (uint32, error) { return 7, nil },
			wantAttempts: 7,
			wantCode:     codes.OK,
		},
		{
			name:   "implementation gives up",
			target: testTarget(),
			impl: func(context.Context, *pluginv1.Target) (uint32, error) {
				return 0, status.Error(codes.DeadlineExceeded, "guest not up")
			},
			wantCode: codes.DeadlineExceeded,
		},
		{
			name:     "nil target refused before the implementation",
			target:   nil,
			impl:     func(context.Context, *pluginv1.Target) (uint32, error) { return 0, errors.New("must not be called") },
			wantCode: codes.InvalidArgument,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *pluginv1.Target
			impl := &fakeTransport{waitReady: func(ctx context.Context, target *pluginv1.Target) (uint32, error) {
				got = target
				return tt.impl(ctx, target)
			}}
			attempts, err := plugintest.Transport(t, impl).WaitReady(t.Context(), tt.target)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("WaitReady error = %v, want code %v", err, tt.wantCode)
			}
			if attempts != tt.wantAttempts {
				t.Errorf("attempts = %d, want %d", attempts, tt.wantAttempts)
			}
			if tt.target != nil && !proto.Equal(got, tt.target) {
				t.Errorf("implementation got target %v, want %v", got, tt.target)
			}
			if tt.target == nil && impl.calls.Load() != 0 {
				t.Error("implementation was called with a nil target")
			}
		})
	}
}

// uploadImpl is a transport's Upload that checks the content against the
// header like a real transport does.
func uploadImpl(got **pluginv1.UploadHeader) func(context.Context, *pluginv1.UploadHeader, io.Reader) (*pluginv1.UploadResponse, error) {
	return func(_ context.Context, h *pluginv1.UploadHeader, content io.Reader) (*pluginv1.UploadResponse, error) {
		*got = h
		hash := sha256.New()
		n, err := io.Copy(hash, content)
		if err != nil {
			return nil, fmt.Errorf("read upload: %w", err)
		}
		sum := hex.EncodeToString(hash.Sum(nil))
		if sum != h.GetSha256() {
			return nil, status.Errorf(codes.DataLoss, "upload %s: content has sha256 %s, header says %s", h.GetPath(), sum, h.GetSha256())
		}
		return &pluginv1.UploadResponse{Size: n, Sha256: sum}, nil
	}
}

func TestUploadReassemblesChunks(t *testing.T) {
	const chunk = 1<<20 - 16 // the largest upload message payload (largePayload)
	for _, size := range []int{0, 1, chunk - 1, chunk, chunk + 1, 5<<20 + 17, 32 << 20} {
		t.Run(fmt.Sprintf("%d bytes", size), func(t *testing.T) {
			content := testrand.Bytes(size, uint64(size))
			sum := sha256.Sum256(content)
			header := &pluginv1.UploadHeader{Target: testTarget(), Path: "/tmp/job.sh", Mode: 0o700, Size: int64(size), Sha256: hex.EncodeToString(sum[:])}
			var got *pluginv1.UploadHeader
			tr := plugintest.Transport(t, &fakeTransport{upload: uploadImpl(&got)})
			resp, err := tr.Upload(t.Context(), header, bytes.NewReader(content))
			if err != nil {
				t.Fatalf("Upload: %v", err)
			}
			if resp.GetSize() != int64(size) || resp.GetSha256() != header.GetSha256() {
				t.Errorf("Upload = %v, want size %d sha256 %s", resp, size, header.GetSha256())
			}
			if !proto.Equal(got, header) {
				t.Errorf("implementation got header %v, want %v", got, header)
			}
		})
	}
}

func TestUploadErrors(t *testing.T) {
	big := testrand.Bytes(8<<20, 3)
	tests := []struct {
		name     string
		header   *pluginv1.UploadHeader
		content  io.Reader
		impl     func(context.Context, *pluginv1.UploadHeader, io.Reader) (*pluginv1.UploadResponse, error)
		wantCode codes.Code
		wantMsg  string
		wantCall bool
	}{
		{
			name:     "header without target",
			header:   &pluginv1.UploadHeader{Path: "/tmp/x"},
			content:  strings.NewReader("x"),
			wantCode: codes.InvalidArgument,
			wantMsg:  "upload: the first message must be a header with a target",
		},
		{
			name:     "checksum mismatch",
			header:   &pluginv1.UploadHeader{Target: testTarget(), Path: "/tmp/x", Sha256: strings.Repeat("0", 64)},
			content:  strings.NewReader("x"),
			wantCode: codes.DataLoss,
			wantMsg:  "upload /tmp/x: content has sha256 2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881, header says " + strings.Repeat("0", 64),
			wantCall: true,
		},
		{
			name:   "implementation refuses before reading",
			header: &pluginv1.UploadHeader{Target: testTarget(), Path: "relative"},
			// Large enough that the client is still sending when the
			// server has already answered.
			content: bytes.NewReader(big),
			impl: func(context.Context, *pluginv1.UploadHeader, io.Reader) (*pluginv1.UploadResponse, error) {
				return nil, pluginapi.InvalidInput("path", "relative", "must be absolute")
			},
			wantCode: codes.InvalidArgument,
			wantMsg:  `path "relative": must be absolute`,
			wantCall: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got *pluginv1.UploadHeader
			impl := &fakeTransport{upload: tt.impl}
			if impl.upload == nil {
				impl.upload = uploadImpl(&got)
			}
			_, err := plugintest.Transport(t, impl).Upload(t.Context(), tt.header, tt.content)
			if status.Code(err) != tt.wantCode || pluginapi.ErrorMessage(err) != tt.wantMsg {
				t.Errorf("Upload error = %v, want code %v message %q", err, tt.wantCode, tt.wantMsg)
			}
			if called := impl.calls.Load() > 0; called != tt.wantCall {
				t.Errorf("implementation called = %v, want %v", called, tt.wantCall)
			}
		})
	}
}

func TestUploadContentReadError(t *testing.T) {
	var got *pluginv1.UploadHeader
	tr := plugintest.Transport(t, &fakeTransport{upload: uploadImpl(&got)})
	content := io.MultiReader(strings.NewReader("part"), iotest.ErrReader(errors.New("disk read failed")))
	_, err := tr.Upload(t.Context(), &pluginv1.UploadHeader{Target: testTarget(), Path: "/tmp/x"}, content)
	if err == nil || !strings.Contains(err.Error(), "upload: read content: disk read failed") {
		t.Errorf("Upload with a failing reader = %v, want the read error", err)
	}
}

// zeroReader returns n zero bytes in reads of at most 32 KiB, like an SSH
// channel that delivers one packet at a time.
type zeroReader struct{ n int64 }

func (r *zeroReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.n, 32<<10))
	clear(p[:n])
	r.n -= int64(n)
	return n, nil
}

// BenchmarkExecOutput streams 64 MiB of stdout through the Exec adapters
// over real gRPC (in-process, a Unix socket, no TLS), the implementation
// copying it from a reader as the SSH transport does: the cost of the
// gRPC hop alone, both sides.
//
//	go test ./pluginapi -run '^$' -bench ExecOutput -count 5
func BenchmarkExecOutput(b *testing.B) {
	const size = 64 << 20
	tr := plugintest.Transport(b, &fakeTransport{exec: func(_ context.Context, _ *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
		_, err := io.Copy(stdio.Stdout, &zeroReader{n: size})
		return &pluginv1.ExecExit{}, err
	}})
	b.SetBytes(size)
	for b.Loop() {
		var n int64
		stdout := writerFunc(func(p []byte) (int, error) {
			n += int64(len(p))
			return len(p), nil
		})
		if _, err := tr.Exec(b.Context(), startFor("x"), pluginapi.ExecIO{Stdout: stdout}); err != nil {
			b.Fatal(err)
		}
		if n != size {
			b.Fatalf("client got %d bytes, want %d", n, size)
		}
	}
}
