package pluginapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Payload sizes of stdin, output and upload messages.
//
// grpc-go (v1.85) takes the buffer of every message it encodes (sender)
// and reassembles (receiver) from a pool of power-of-two tiers (256 B,
// 4 KiB, 16 KiB, 32 KiB, 1 MiB) and clears the whole tier buffer on every
// Get. A payload of exactly 32 KiB (an SSH packet, an io.Copy buffer) plus
// the few bytes of protobuf framing lands in the 1 MiB tier and costs a
// 1 MiB clear on both sides of the socket: measured on a 256 MiB output
// stream, that was a third of all CPU. Payloads are therefore cut to fit a
// tier with little waste (see nextChunk): at most smallPayload, or between
// largePayload/2 and largePayload.
const (
	// payloadFraming is more than the protobuf framing around a payload
	// (one tag byte and a varint length of at most 3 bytes below 2 MiB).
	payloadFraming = 16
	smallPayload   = 32<<10 - payloadFraming
	largePayload   = 1<<20 - payloadFraming
)

// nextChunk returns how many of n pending bytes go into the next message.
func nextChunk(n int) int {
	switch {
	case n <= smallPayload:
		return n
	case n >= largePayload:
		return largePayload
	case n >= largePayload/2:
		return n
	default:
		return smallPayload
	}
}

// sendChunks passes consecutive parts of p, sized by nextChunk, to send
// and stops at the first error. It returns how many bytes were sent.
func sendChunks(p []byte, send func([]byte) error) (int, error) {
	for off := 0; off < len(p); {
		n := nextChunk(len(p) - off)
		if err := send(p[off : off+n]); err != nil {
			return off, err
		}
		off += n
	}
	return len(p), nil
}

// transportGRPCPlugin binds the Transport service into go-plugin.
type transportGRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl TransportPlugin // nil on the client side
	// out is the direct output side channel of a served plugin; nil
	// (in-process harnesses, the client side) answers OutputChannel with
	// Unimplemented.
	out *directOutput
}

func (p *transportGRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterTransportServer(s, &transportServer{impl: p.impl, out: p.out})
	return nil
}

func (p *transportGRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &transportClient{infoClient: infoClient{rpc: pluginv1.NewInfoClient(cc)}, rpc: pluginv1.NewTransportClient(cc)}, nil
}

// ---------------------------------------------------------------- server side

type transportServer struct {
	pluginv1.UnimplementedTransportServer
	impl TransportPlugin
	out  *directOutput // nil: no direct output
}

func (s *transportServer) OutputChannel(context.Context, *pluginv1.OutputChannelRequest) (*pluginv1.OutputChannelResponse, error) {
	if s.out == nil {
		return nil, status.Error(codes.Unimplemented, "output channel: this plugin streams output over gRPC only")
	}
	path, err := s.out.channel()
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return &pluginv1.OutputChannelResponse{Path: path}, nil
}

func (s *transportServer) WaitReady(ctx context.Context, req *pluginv1.WaitReadyRequest) (*pluginv1.WaitReadyResponse, error) {
	if req.GetTarget() == nil {
		return nil, status.Error(codes.InvalidArgument, "wait ready: target is required")
	}
	attempts, err := s.impl.WaitReady(ctx, req.GetTarget())
	if err != nil {
		return nil, err
	}
	return &pluginv1.WaitReadyResponse{Attempts: attempts}, nil
}

func (s *transportServer) ValidateTarget(ctx context.Context, req *pluginv1.ValidateTargetRequest) (*pluginv1.ValidateTargetResponse, error) {
	v, ok := s.impl.(TargetValidator)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "validate target: this transport checks targets only when it connects")
	}
	if req.GetTarget() == nil {
		return nil, status.Error(codes.InvalidArgument, "validate target: target is required")
	}
	if err := v.ValidateTarget(ctx, req.GetTarget()); err != nil {
		return nil, err
	}
	return &pluginv1.ValidateTargetResponse{}, nil
}

func (s *transportServer) Exec(stream pluginv1.Transport_ExecServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil || start.GetTarget() == nil {
		return status.Error(codes.InvalidArgument, "exec: the first message must be a start with a target")
	}
	ctx := stream.Context()
	out := &lockedSender{send: stream.Send}
	var stdout, stderr io.Writer = out.writer(func(b []byte) *pluginv1.ExecOutput {
		return &pluginv1.ExecOutput{Output: &pluginv1.ExecOutput_Stdout{Stdout: b}}
	}), out.writer(func(b []byte) *pluginv1.ExecOutput {
		return &pluginv1.ExecOutput{Output: &pluginv1.ExecOutput_Stderr{Stderr: b}}
	})
	if token := start.GetOutputToken(); len(token) > 0 {
		if s.out == nil {
			return status.Error(codes.FailedPrecondition, "exec start output_token: set, but this plugin has no output channel")
		}
		dout, derr, err := s.out.take(token)
		if err != nil {
			return err
		}
		// Closed before the exit is sent (below), and on every other path;
		// at once when the core gives up on the call (cancel, lost
		// connection), so that output the command makes while it is being
		// terminated does not reach the core's stdout after the core's
		// Exec returned, nor keep the runner's pipe open.
		defer dout.close()
		defer derr.close()
		stop := context.AfterFunc(ctx, func() {
			dout.close()
			derr.close()
		})
		defer stop()
		stdout, stderr = dout, derr
		// The implementation has no use for the token: keep it out of
		// anything it might log.
		start = proto.CloneOf(start)
		start.OutputToken = nil
	}
	stdinR, stdinW := io.Pipe()
	// Unblock the input pump if the implementation stops reading stdin.
	defer func() { _ = stdinR.Close() }()
	signals := make(chan string, 4)
	done := make(chan struct{})
	defer close(done)
	go pumpExecInput(stream, stdinW, signals, done)

	exit, err := s.impl.Exec(ctx, start, ExecIO{
		Stdin:   stdinR,
		Stdout:  stdout,
		Stderr:  stderr,
		Signals: signals,
	})
	// Direct output: every write is done and the plugin's copies of the
	// core's descriptors are closed before the exit leaves, so the core
	// never returns before its output is complete.
	if d, ok := stdout.(*directWriter); ok {
		d.close()
	}
	if d, ok := stderr.(*directWriter); ok {
		d.close()
	}
	if err != nil {
		return err
	}
	if exit == nil {
		return status.Error(codes.Internal, "exec: plugin returned no exit status")
	}
	return out.sendMsg(&pluginv1.ExecOutput{Output: &pluginv1.ExecOutput_Exit{Exit: exit}})
}

// pumpExecInput moves stdin chunks and signals from the stream to the
// implementation until the client closes its side or the call ends.
func pumpExecInput(stream pluginv1.Transport_ExecServer, stdin *io.PipeWriter, signals chan<- string, done <-chan struct{}) {
	for {
		in, err := stream.Recv()
		if err != nil {
			_ = stdin.CloseWithError(io.EOF)
			return
		}
		switch v := in.GetInput().(type) {
		case *pluginv1.ExecInput_Stdin:
			if _, err := stdin.Write(v.Stdin); err != nil {
				// The implementation stopped reading: drop further input.
				continue
			}
		case *pluginv1.ExecInput_StdinClose:
			_ = stdin.Close()
		case *pluginv1.ExecInput_Signal:
			select {
			case signals <- v.Signal.GetName():
			case <-done:
				return
			}
		}
	}
}

func (s *transportServer) Upload(stream pluginv1.Transport_UploadServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	header := first.GetHeader()
	if header == nil || header.GetTarget() == nil {
		return status.Error(codes.InvalidArgument, "upload: the first message must be a header with a target")
	}
	pr, pw := io.Pipe()
	defer func() { _ = pr.Close() }()
	go func() {
		for {
			chunk, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				_ = pw.Close()
				return
			}
			if err != nil {
				_ = pw.CloseWithError(err)
				return
			}
			if _, err := pw.Write(chunk.GetData()); err != nil {
				return
			}
		}
	}()
	resp, err := s.impl.Upload(stream.Context(), header, pr)
	if err != nil {
		return err
	}
	return stream.SendAndClose(resp)
}

// lockedSender serialises Send calls: a gRPC stream allows one sender at a
// time, and stdout and stderr are written from different goroutines.
type lockedSender struct {
	mu   sync.Mutex
	send func(*pluginv1.ExecOutput) error
}

func (s *lockedSender) sendMsg(m *pluginv1.ExecOutput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.send(m)
}

func (s *lockedSender) writer(wrap func([]byte) *pluginv1.ExecOutput) io.Writer {
	return &outputWriter{s: s, wrap: wrap}
}

// outputWriter turns one output stream of an Exec (stdout or stderr) into
// messages. Each message is sent as soon as its data is there; nothing is
// held back to fill a message.
type outputWriter struct {
	s    *lockedSender
	wrap func([]byte) *pluginv1.ExecOutput
	buf  []byte // ReadFrom's read buffer, allocated on first use
}

// Write sends p in messages sized by nextChunk, each with its own copy of
// its part of p: the caller may reuse p once Write returns.
func (w *outputWriter) Write(p []byte) (int, error) {
	return sendChunks(p, func(b []byte) error {
		return w.s.sendMsg(w.wrap(append([]byte(nil), b...)))
	})
}

// ReadFrom copies r to the stream until EOF. io.Copy uses it, so an
// implementation that copies a reader to Stdout (x/crypto/ssh copies an
// SSH channel) sends whatever one Read returns, up to largePayload,
// instead of one message per io.Copy's 32 KiB buffer: output that piled
// up while the previous message was sent leaves in one large message, and
// a single line still leaves as soon as Read returns it.
//
// The messages alias w.buf, which the next Read overwrites. That is safe
// because grpc-go's server stream encodes a message into its own buffer
// before SendMsg returns, and nothing in this package's servers keeps a
// sent message (no stats handler, binary log or x/net/trace): it saves a
// copy of every output byte. TestExecLargeStreams fails if that changes.
func (w *outputWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.buf == nil {
		w.buf = make([]byte, largePayload)
	}
	return readEach(r, w.buf, func(b []byte) (int, error) {
		return sendChunks(b, func(b []byte) error { return w.s.sendMsg(w.wrap(b)) })
	})
}

// readEach reads r into buf until EOF and hands each Read's data to write
// at once (nothing is held back to fill buf). It returns the bytes write
// took and the first error other than io.EOF. It is the loop of the
// io.ReaderFrom implementations that let io.Copy make fewer, larger
// writes.
func readEach(r io.Reader, buf []byte, write func([]byte) (int, error)) (int64, error) {
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			written, err := write(buf[:n])
			total += int64(written)
			if err != nil {
				return total, err
			}
		}
		if errors.Is(rerr, io.EOF) {
			return total, nil
		}
		if rerr != nil {
			return total, rerr
		}
	}
}

// ---------------------------------------------------------------- client side

// transportClient implements TransportPlugin over gRPC.
type transportClient struct {
	infoClient
	rpc pluginv1.TransportClient

	// outMu guards the plugin's direct output channel, asked for once.
	outMu    sync.Mutex
	outAsked bool
	outPath  string // "" when the plugin has none
}

// outputChannel returns the plugin's direct output channel, or "" if it
// has none (an older plugin answers Unimplemented) or the question failed.
func (c *transportClient) outputChannel(ctx context.Context) string {
	c.outMu.Lock()
	defer c.outMu.Unlock()
	if !c.outAsked {
		resp, err := c.rpc.OutputChannel(ctx, &pluginv1.OutputChannelRequest{})
		if err != nil && ctx.Err() != nil {
			// Cancelled: ask again next time.
			return ""
		}
		c.outAsked = true
		c.outPath = resp.GetPath()
	}
	return c.outPath
}

// directStart returns start with a token under which stdio's files were
// handed to the plugin, or start itself when output goes over the stream
// (stdio not files, no output channel, or any error setting it up).
func (c *transportClient) directStart(ctx context.Context, start *pluginv1.ExecStart, stdio ExecIO) (*pluginv1.ExecStart, bool) {
	stdout, stderr, ok := directFiles(stdio)
	if !ok {
		return start, false
	}
	path := c.outputChannel(ctx)
	if path == "" {
		return start, false
	}
	token, err := newOutputToken()
	if err != nil {
		return start, false
	}
	if err := sendOutputFiles(ctx, path, token, stdout, stderr); err != nil {
		return start, false
	}
	direct := proto.CloneOf(start)
	direct.OutputToken = token
	return direct, true
}

func (c *transportClient) WaitReady(ctx context.Context, target *pluginv1.Target) (uint32, error) {
	resp, err := c.rpc.WaitReady(ctx, &pluginv1.WaitReadyRequest{Target: target})
	if err != nil {
		return 0, err
	}
	return resp.GetAttempts(), nil
}

func (c *transportClient) ValidateTarget(ctx context.Context, target *pluginv1.Target) error {
	_, err := c.rpc.ValidateTarget(ctx, &pluginv1.ValidateTargetRequest{Target: target})
	return err
}

func (c *transportClient) Exec(ctx context.Context, start *pluginv1.ExecStart, stdio ExecIO) (*pluginv1.ExecExit, error) {
	if len(start.GetOutputToken()) > 0 {
		return nil, InvalidInput("exec start output_token", "(set)", "is set by pluginapi's client only; leave it empty")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start, _ = c.directStart(ctx, start, stdio)
	stream, err := c.rpc.Exec(ctx, grpc.ForceCodecV2(&execOutputCodec{}))
	if err != nil {
		return nil, err
	}
	in := &lockedInput{send: stream.Send}
	if err := in.sendMsg(&pluginv1.ExecInput{Input: &pluginv1.ExecInput_Start{Start: start}}); err != nil {
		return nil, recvStatus(stream, err)
	}
	go in.pumpStdin(stdio.Stdin)
	if stdio.Signals != nil {
		go in.forwardSignals(ctx, stdio.Signals)
	}
	stdout, stderr := orDiscard(stdio.Stdout), orDiscard(stdio.Stderr)
	for {
		msg, err := stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("exec: transport plugin closed the stream without an exit status")
			}
			return nil, err
		}
		switch v := msg.GetOutput().(type) {
		case *pluginv1.ExecOutput_Stdout:
			if _, err := stdout.Write(v.Stdout); err != nil {
				return nil, fmt.Errorf("exec: write stdout: %w", err)
			}
		case *pluginv1.ExecOutput_Stderr:
			if _, err := stderr.Write(v.Stderr); err != nil {
				return nil, fmt.Errorf("exec: write stderr: %w", err)
			}
		case *pluginv1.ExecOutput_Exit:
			return v.Exit, nil
		}
	}
}

// execOutputCodec is the proto codec with one shortcut for the Exec
// stream's output messages: a message that is one stdout or stderr chunk
// (every output message a plugin sends) is decoded into a buffer reused
// for the whole call, its chunk aliasing that buffer, instead of gRPC's
// pooled buffer (cleared on every Get) plus the copy proto.Unmarshal makes
// of every bytes field. A chunk is therefore valid only until the next
// Recv: Exec writes it to ExecIO.Stdout or Stderr before that, and an
// io.Writer must not keep p anyway. Every other message, and anything
// unusual on the wire, goes through proto.Unmarshal as before.
//
// One codec per call: Recv is never called concurrently on one stream.
type execOutputCodec struct {
	buf []byte
}

// protoCodec returns grpc's registered proto codec, which this one
// extends.
func protoCodec() encoding.CodecV2 { return encoding.GetCodecV2(grpcproto.Name) }

func (c *execOutputCodec) Name() string { return grpcproto.Name }

func (c *execOutputCodec) Marshal(v any) (mem.BufferSlice, error) { return protoCodec().Marshal(v) }

func (c *execOutputCodec) Unmarshal(data mem.BufferSlice, v any) error {
	out, ok := v.(*pluginv1.ExecOutput)
	if !ok {
		return protoCodec().Unmarshal(data, v)
	}
	n := data.Len()
	if cap(c.buf) < n {
		c.buf = make([]byte, n)
	}
	b := c.buf[:n]
	data.CopyTo(b)
	if num, typ, tagLen := protowire.ConsumeTag(b); tagLen > 0 && typ == protowire.BytesType {
		if chunk, valLen := protowire.ConsumeBytes(b[tagLen:]); valLen == n-tagLen {
			switch num {
			case stdoutField:
				proto.Reset(out)
				out.Output = &pluginv1.ExecOutput_Stdout{Stdout: chunk}
				return nil
			case stderrField:
				proto.Reset(out)
				out.Output = &pluginv1.ExecOutput_Stderr{Stderr: chunk}
				return nil
			}
		}
	}
	return proto.Unmarshal(b, out)
}

// Field numbers of ExecOutput's output chunks (proto/v1/plugin.proto).
const (
	stdoutField protowire.Number = 1
	stderrField protowire.Number = 2
)

// recvStatus returns the real error of a stream whose Send failed: gRPC
// reports io.EOF on Send and the status on the next Recv.
func recvStatus(stream grpc.ClientStream, sendErr error) error {
	if !errors.Is(sendErr, io.EOF) {
		return sendErr
	}
	if err := stream.RecvMsg(new(pluginv1.ExecOutput)); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return sendErr
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// lockedInput serialises Send calls on the client side of an Exec stream.
type lockedInput struct {
	mu   sync.Mutex
	send func(*pluginv1.ExecInput) error
}

func (s *lockedInput) sendMsg(m *pluginv1.ExecInput) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.send(m)
}

func (s *lockedInput) pumpStdin(r io.Reader) {
	if r != nil {
		// Small: stdin is rarely bulk, and a 32 KiB read always fits a
		// message of its own.
		buf := make([]byte, smallPayload)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				if s.sendMsg(&pluginv1.ExecInput{Input: &pluginv1.ExecInput_Stdin{Stdin: append([]byte(nil), buf[:n]...)}}) != nil {
					return
				}
			}
			if err != nil {
				break
			}
		}
	}
	_ = s.sendMsg(&pluginv1.ExecInput{Input: &pluginv1.ExecInput_StdinClose{StdinClose: true}})
}

func (s *lockedInput) forwardSignals(ctx context.Context, signals <-chan string) {
	for {
		select {
		case <-ctx.Done():
			return
		case name, ok := <-signals:
			if !ok {
				return
			}
			if s.sendMsg(&pluginv1.ExecInput{Input: &pluginv1.ExecInput_Signal{Signal: &pluginv1.ExecSignal{Name: name}}}) != nil {
				return
			}
		}
	}
}

func (c *transportClient) Upload(ctx context.Context, header *pluginv1.UploadHeader, content io.Reader) (*pluginv1.UploadResponse, error) {
	stream, err := c.rpc.Upload(ctx)
	if err != nil {
		return nil, err
	}
	if err := stream.Send(&pluginv1.UploadChunk{Chunk: &pluginv1.UploadChunk_Header{Header: header}}); err != nil {
		return nil, uploadStatus(stream, err)
	}
	buf := make([]byte, largePayload)
	for {
		n, rerr := content.Read(buf)
		if n > 0 {
			if _, err := sendChunks(buf[:n], func(b []byte) error {
				return stream.Send(&pluginv1.UploadChunk{Chunk: &pluginv1.UploadChunk_Data{Data: append([]byte(nil), b...)}})
			}); err != nil {
				return nil, uploadStatus(stream, err)
			}
		}
		if errors.Is(rerr, io.EOF) {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("upload: read content: %w", rerr)
		}
	}
	return stream.CloseAndRecv()
}

// uploadStatus returns the server's status for a Send that failed with EOF.
func uploadStatus(stream pluginv1.Transport_UploadClient, sendErr error) error {
	if !errors.Is(sendErr, io.EOF) {
		return sendErr
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		return err
	}
	return sendErr
}
