package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// TestTransportPlugin launches the transport plugin binary at binaryPath
// the way the core does and checks that it keeps the contract against the
// guest opts.Target returns. Every check is a subtest of t.
func TestTransportPlugin(t *testing.T, binaryPath string, opts TransportOptions) {
	t.Helper()
	if err := opts.validate(); err != nil {
		t.Fatalf("conformance: %v", err)
	}
	h := newHarness(binaryPath, pluginv1.Kind_KIND_TRANSPORT, opts.Env, opts.StartTimeout, opts.CallTimeout)
	k := &transportKit{h: h, opts: opts, cmd: opts.Commands.withDefaults()}
	if k.opts.UploadDir == "" {
		k.opts.UploadDir = "/tmp"
	}
	if k.opts.WrongHostKeyTimeout <= 0 {
		k.opts.WrongHostKeyTimeout = DefaultWrongHostKeyTimeout
	}
	if !h.runCommon(t) {
		return
	}
	var err error
	if k.tr, err = h.plugin.Transport(); err != nil {
		t.Fatal(err)
	}
	k.target = opts.Target(t)
	if k.target == nil {
		t.Fatal("conformance: TransportOptions.Target returned nil")
	}
	h.secrets.add("target private key", k.target.GetPrivateKey())
	h.secrets.add("target password", []byte(k.target.GetPassword()))

	if !t.Run("WaitReady", k.testWaitReady) {
		t.Error("the target is not reachable: the remaining transport checks would only repeat that")
		h.runFinal(t)
		return
	}
	t.Run("Exec", func(t *testing.T) {
		t.Run("OutputAndExitCode", k.testOutErr)
		t.Run("EnvAndWorkdir", k.testEnv)
		t.Run("Stdin", k.testStdin)
		t.Run("NoStdin", k.testNoStdin)
		t.Run("Concurrent", k.testConcurrentExec)
		t.Run("Cancel", k.testCancel)
		if slices.Contains(h.info.GetCapabilities(), "signal") {
			t.Run("Signal", k.testSignal)
		} else {
			t.Log(`the plugin does not declare the "signal" capability: signal forwarding not checked`)
		}
	})
	t.Run("Upload", func(t *testing.T) {
		t.Run("RightChecksum", k.testUpload)
		t.Run("WrongChecksum", k.testUploadWrongChecksum)
	})
	t.Run("HostKey", func(t *testing.T) {
		t.Run("NonePinned", k.testNoHostKeys)
		t.Run("WrongRefusedByWaitReady", k.testWrongHostKeyWaitReady)
		t.Run("WrongRefusedByExec", k.testWrongHostKeyExec)
		t.Run("WrongRefusedByUpload", k.testWrongHostKeyUpload)
	})
	h.runFinal(t)
}

type transportKit struct {
	h      *harness
	opts   TransportOptions
	cmd    Commands
	tr     pluginapi.TransportPlugin
	target *pluginv1.Target
}

// result is what one Exec produced.
type result struct {
	exit   *pluginv1.ExecExit
	err    error
	stdout string
	stderr string
}

func (k *transportKit) exec(ctx context.Context, t *testing.T, start *pluginv1.ExecStart, stdio pluginapi.ExecIO) result {
	t.Helper()
	var stdout, stderr plugintest.SyncBuffer
	if stdio.Stdout == nil {
		stdio.Stdout = &stdout
	}
	if stdio.Stderr == nil {
		stdio.Stderr = &stderr
	}
	exit, err := k.tr.Exec(ctx, start, stdio)
	k.h.checkErr(t, "Exec", err)
	return result{exit: exit, err: err, stdout: stdout.String(), stderr: stderr.String()}
}

func (k *transportKit) start(command string) *pluginv1.ExecStart {
	return &pluginv1.ExecStart{Target: proto.Clone(k.target).(*pluginv1.Target), Command: command}
}

// normalize makes output comparable across guests: CRLF to LF, no
// surrounding white space.
func normalize(s string) string {
	return strings.TrimSpace(strings.ReplaceAll(s, "\r\n", "\n"))
}

func (k *transportKit) testWaitReady(t *testing.T) {
	attempts, err := k.tr.WaitReady(k.h.ctx(t), proto.Clone(k.target).(*pluginv1.Target))
	k.h.checkErr(t, "WaitReady", err)
	if err != nil {
		t.Fatalf("WaitReady on a reachable target: %s", pluginapi.ErrorMessage(err))
	}
	if attempts < 1 {
		t.Errorf("WaitReady reported %d attempts, want at least 1", attempts)
	}
}

func (k *transportKit) testOutErr(t *testing.T) {
	r := k.exec(k.h.ctx(t), t, k.start(k.cmd.OutErr), pluginapi.ExecIO{})
	if r.err != nil {
		t.Fatalf("Exec %q: %s", k.cmd.OutErr, pluginapi.ErrorMessage(r.err))
	}
	if got := normalize(r.stdout); got != "out" {
		t.Errorf("stdout %q, want %q", got, "out")
	}
	if got := normalize(r.stderr); got != "err" {
		t.Errorf("stderr %q, want %q", got, "err")
	}
	if r.exit.GetCode() != 3 || r.exit.GetSignal() != "" || r.exit.GetDisconnected() {
		t.Errorf("exit %v, want code 3, no signal, not disconnected", r.exit)
	}
}

func (k *transportKit) testEnv(t *testing.T) {
	const value = "a value with spaces, 'quotes' and $dollar"
	start := k.start(k.cmd.Env)
	start.Env = map[string]string{"CONFORMANCE_VAR": value}
	start.Workdir = k.opts.UploadDir
	r := k.exec(k.h.ctx(t), t, start, pluginapi.ExecIO{})
	if r.err != nil {
		t.Fatalf("Exec %q: %s", k.cmd.Env, pluginapi.ErrorMessage(r.err))
	}
	lines := strings.Split(normalize(r.stdout), "\n")
	if len(lines) != 2 || lines[0] != value || lines[1] != k.opts.UploadDir {
		t.Errorf("output %q, want the variable %q and the workdir %q on two lines", r.stdout, value, k.opts.UploadDir)
	}
	if r.exit.GetCode() != 0 {
		t.Errorf("exit %v, want code 0", r.exit)
	}
}

func (k *transportKit) testStdin(t *testing.T) {
	// Text in lines, so it survives a guest's text-mode console.
	var in strings.Builder
	for i := 0; in.Len() < 1<<20; i++ {
		sum := sha256.Sum256([]byte{byte(i), byte(i >> 8)})
		fmt.Fprintf(&in, "line %06d %s\n", i, base64.StdEncoding.EncodeToString(sum[:]))
	}
	r := k.exec(k.h.ctx(t), t, k.start(k.cmd.Cat), pluginapi.ExecIO{Stdin: strings.NewReader(in.String())})
	if r.err != nil {
		t.Fatalf("Exec %q: %s", k.cmd.Cat, pluginapi.ErrorMessage(r.err))
	}
	if normalize(r.stdout) != normalize(in.String()) {
		t.Errorf("%q echoed %d bytes of the %d sent on stdin, or changed them", k.cmd.Cat, len(r.stdout), in.Len())
	}
	if r.exit.GetCode() != 0 {
		t.Errorf("exit %v, want code 0", r.exit)
	}
}

func (k *transportKit) testNoStdin(t *testing.T) {
	// With no stdin the command sees EOF at once; if the transport does
	// not close the remote stdin, Exec hangs until the call timeout.
	r := k.exec(k.h.ctx(t), t, k.start(k.cmd.Cat), pluginapi.ExecIO{})
	if r.err != nil {
		t.Fatalf("Exec %q without stdin: %s (is the remote stdin closed?)", k.cmd.Cat, pluginapi.ErrorMessage(r.err))
	}
	if r.stdout != "" || r.exit.GetCode() != 0 {
		t.Errorf("Exec %q without stdin: stdout %q, exit %v; want no output and code 0", k.cmd.Cat, r.stdout, r.exit)
	}
}

func (k *transportKit) testConcurrentExec(t *testing.T) {
	const n = 8
	results := make([]result, n)
	var wg sync.WaitGroup
	for i := range results {
		wg.Go(func() { results[i] = k.exec(k.h.ctx(t), t, k.start(k.cmd.OutErr), pluginapi.ExecIO{}) })
	}
	wg.Wait()
	for i, r := range results {
		if r.err != nil {
			t.Errorf("concurrent Exec %d: %s", i, pluginapi.ErrorMessage(r.err))
			continue
		}
		if normalize(r.stdout) != "out" || normalize(r.stderr) != "err" || r.exit.GetCode() != 3 {
			t.Errorf("concurrent Exec %d: stdout %q stderr %q exit %v; want out, err, code 3", i, r.stdout, r.stderr, r.exit)
		}
	}
}

// startBlocking runs the Block command until it has printed its id and
// returns the id and the channel its Exec result arrives on.
func (k *transportKit) startBlocking(ctx context.Context, t *testing.T, signals <-chan string) (string, <-chan result) {
	t.Helper()
	started := make(chan string, 1)
	var out plugintest.SyncBuffer
	stdout := writerFunc(func(p []byte) (int, error) {
		n, err := out.Write(p)
		// The first complete line carries the id.
		if line, _, complete := strings.Cut(out.String(), "\n"); complete {
			if id, ok := strings.CutPrefix(strings.TrimSpace(line), "started "); ok {
				select {
				case started <- strings.TrimSpace(id):
				default:
				}
			}
		}
		return n, err
	})
	done := make(chan result, 1)
	go func() {
		done <- k.exec(ctx, t, k.start(k.cmd.Block), pluginapi.ExecIO{Stdout: stdout, Signals: signals})
	}()
	select {
	case id := <-started:
		return id, done
	case r := <-done:
		t.Fatalf("Exec %q ended before printing \"started <id>\": err %v, exit %v, stdout %q", k.cmd.Block, r.err, r.exit, out.String())
	case <-time.After(k.h.callTimeout):
		t.Fatalf("Exec %q printed no \"started <id>\" line within %v", k.cmd.Block, k.h.callTimeout)
	}
	return "", nil
}

// waitGone polls the Alive command until the process id is gone.
func (k *transportKit) waitGone(t *testing.T, id string) {
	t.Helper()
	alive := strings.ReplaceAll(k.cmd.Alive, "{id}", id)
	deadline := time.Now().Add(k.h.callTimeout)
	for {
		r := k.exec(k.h.ctx(t), t, k.start(alive), pluginapi.ExecIO{})
		if r.err != nil {
			t.Fatalf("Exec %q: %s", alive, pluginapi.ErrorMessage(r.err))
		}
		if r.exit.GetCode() != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the remote command %s still runs %v after its Exec ended: the transport must end the remote command", id, k.h.callTimeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (k *transportKit) testCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	id, done := k.startBlocking(ctx, t, nil)
	cancel()
	select {
	case r := <-done:
		if r.err == nil && !r.exit.GetDisconnected() && r.exit.GetSignal() == "" && r.exit.GetCode() == 0 {
			t.Errorf("Exec after cancel returned a clean exit %v, want an error or a killed command", r.exit)
		}
	case <-time.After(k.h.callTimeout):
		t.Fatalf("Exec did not return within %v of its ctx being cancelled", k.h.callTimeout)
	}
	k.waitGone(t, id)
}

func (k *transportKit) testSignal(t *testing.T) {
	signals := make(chan string, 1)
	id, done := k.startBlocking(k.h.ctx(t), t, signals)
	signals <- "TERM"
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("Exec with TERM: %s", pluginapi.ErrorMessage(r.err))
		}
		if r.exit.GetSignal() != "TERM" && r.exit.GetCode() != 128+15 {
			t.Errorf("exit %v after TERM, want signal TERM (or code 143)", r.exit)
		}
	case <-time.After(k.h.callTimeout):
		t.Fatalf("the command did not end within %v of TERM", k.h.callTimeout)
	}
	k.waitGone(t, id)
}

func (k *transportKit) uploadPath(t *testing.T) string {
	t.Helper()
	name, err := randomName("conformance-upload")
	if err != nil {
		t.Fatal(err)
	}
	sep := "/"
	if strings.Contains(k.opts.UploadDir, `\`) {
		sep = `\`
	}
	return strings.TrimRight(k.opts.UploadDir, sep) + sep + name + ".txt"
}

func uploadContent() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 300<<10; i++ {
		fmt.Fprintf(&b, "upload line %06d\n", i)
	}
	return b.Bytes()
}

func (k *transportKit) upload(t *testing.T, target *pluginv1.Target, path string, content []byte, sum string) (*pluginv1.UploadResponse, error) {
	t.Helper()
	header := &pluginv1.UploadHeader{Target: target, Path: path, Mode: 0o600, Size: int64(len(content)), Sha256: sum}
	resp, err := k.tr.Upload(k.h.ctx(t), header, bytes.NewReader(content))
	k.h.checkErr(t, "Upload", err)
	return resp, err
}

func (k *transportKit) testUpload(t *testing.T) {
	content := uploadContent()
	sum := sha256.Sum256(content)
	path := k.uploadPath(t)
	resp, err := k.upload(t, proto.Clone(k.target).(*pluginv1.Target), path, content, hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatalf("Upload to %s: %s", path, pluginapi.ErrorMessage(err))
	}
	if resp.GetSize() != int64(len(content)) || resp.GetSha256() != hex.EncodeToString(sum[:]) {
		t.Errorf("Upload response %v, want size %d and sha256 %x", resp, len(content), sum)
	}
	read := strings.ReplaceAll(k.cmd.ReadFile, "{path}", path)
	r := k.exec(k.h.ctx(t), t, k.start(read), pluginapi.ExecIO{})
	if r.err != nil || r.exit.GetCode() != 0 {
		t.Fatalf("Exec %q: err %v, exit %v", read, r.err, r.exit)
	}
	if r.stdout != string(content) {
		t.Errorf("the guest's file has %d bytes that differ from the %d uploaded", len(r.stdout), len(content))
	}
}

func (k *transportKit) testUploadWrongChecksum(t *testing.T) {
	content := uploadContent()
	wrong := sha256.Sum256(append([]byte("other "), content...))
	path := k.uploadPath(t)
	resp, err := k.upload(t, proto.Clone(k.target).(*pluginv1.Target), path, content, hex.EncodeToString(wrong[:]))
	if err == nil {
		t.Errorf("Upload with a wrong sha256 succeeded (%v): the transport must verify the written bytes", resp)
	}
}

func (k *transportKit) wrongTarget(t *testing.T) *pluginv1.Target {
	t.Helper()
	target := proto.Clone(k.target).(*pluginv1.Target)
	var key string
	if k.opts.WrongHostKey != nil {
		key = k.opts.WrongHostKey(t, proto.Clone(k.target).(*pluginv1.Target))
	} else {
		kp, err := newKeyPair()
		if err != nil {
			t.Fatal(err)
		}
		key = kp.authorizedKey
	}
	if slices.Contains(k.target.GetHostKeys(), key) {
		t.Fatalf("conformance: the wrong host key %q is one the target presents", key)
	}
	target.HostKeys = []string{key}
	return target
}

func (k *transportKit) testNoHostKeys(t *testing.T) {
	target := proto.Clone(k.target).(*pluginv1.Target)
	target.HostKeys = nil
	ctx, cancel := context.WithTimeout(t.Context(), k.opts.WrongHostKeyTimeout)
	defer cancel()
	_, err := k.tr.WaitReady(ctx, target)
	k.h.checkErr(t, "WaitReady", err)
	if !pluginapi.IsInvalidInput(err) {
		t.Errorf("WaitReady with no pinned host key: %v, want InvalidArgument (a transport never accepts an unknown host key)", err)
	}
}

func (k *transportKit) testWrongHostKeyWaitReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), k.opts.WrongHostKeyTimeout)
	defer cancel()
	attempts, err := k.tr.WaitReady(ctx, k.wrongTarget(t))
	k.h.checkErr(t, "WaitReady", err)
	if err == nil {
		t.Errorf("WaitReady accepted a guest whose host key is not pinned (after %d attempts)", attempts)
	}
}

func (k *transportKit) testWrongHostKeyExec(t *testing.T) {
	start := k.start(k.cmd.OutErr)
	start.Target = k.wrongTarget(t)
	r := k.exec(k.h.ctx(t), t, start, pluginapi.ExecIO{})
	if r.err == nil {
		t.Errorf("Exec ran on a guest whose host key is not pinned: exit %v", r.exit)
	}
	if r.stdout != "" {
		t.Errorf("Exec with a wrong host key produced output %q", r.stdout)
	}
}

func (k *transportKit) testWrongHostKeyUpload(t *testing.T) {
	content := []byte("must not arrive\n")
	sum := sha256.Sum256(content)
	if _, err := k.upload(t, k.wrongTarget(t), k.uploadPath(t), content, hex.EncodeToString(sum[:])); err == nil {
		t.Error("Upload wrote to a guest whose host key is not pinned")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
