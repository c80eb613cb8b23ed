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
	"google.golang.org/grpc/status"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// chunkSize is the payload size of stdin, output and upload messages: well
// under gRPC's 4 MiB message limit, large enough to keep per-message cost low.
const chunkSize = 64 << 10

// transportGRPCPlugin binds the Transport service into go-plugin.
type transportGRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl TransportPlugin // nil on the client side
}

func (p *transportGRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterTransportServer(s, &transportServer{impl: p.impl})
	return nil
}

func (p *transportGRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &transportClient{infoClient: infoClient{rpc: pluginv1.NewInfoClient(cc)}, rpc: pluginv1.NewTransportClient(cc)}, nil
}

// ---------------------------------------------------------------- server side

type transportServer struct {
	pluginv1.UnimplementedTransportServer
	impl TransportPlugin
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
	stdinR, stdinW := io.Pipe()
	// Unblock the input pump if the implementation stops reading stdin.
	defer func() { _ = stdinR.Close() }()
	signals := make(chan string, 4)
	done := make(chan struct{})
	defer close(done)
	go pumpExecInput(stream, stdinW, signals, done)

	exit, err := s.impl.Exec(ctx, start, ExecIO{
		Stdin: stdinR,
		Stdout: out.writer(func(b []byte) *pluginv1.ExecOutput {
			return &pluginv1.ExecOutput{Output: &pluginv1.ExecOutput_Stdout{Stdout: b}}
		}),
		Stderr: out.writer(func(b []byte) *pluginv1.ExecOutput {
			return &pluginv1.ExecOutput{Output: &pluginv1.ExecOutput_Stderr{Stderr: b}}
		}),
		Signals: signals,
	})
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
	return writerFunc(func(p []byte) (int, error) {
		for off := 0; off < len(p); off += chunkSize {
			end := min(off+chunkSize, len(p))
			// Copy: the caller may reuse p once Write returns.
			if err := s.sendMsg(wrap(append([]byte(nil), p[off:end]...))); err != nil {
				return off, err
			}
		}
		return len(p), nil
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// ---------------------------------------------------------------- client side

// transportClient implements TransportPlugin over gRPC.
type transportClient struct {
	infoClient
	rpc pluginv1.TransportClient
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
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.Exec(ctx)
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
		buf := make([]byte, chunkSize)
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
	buf := make([]byte, chunkSize)
	for {
		n, rerr := content.Read(buf)
		if n > 0 {
			if err := stream.Send(&pluginv1.UploadChunk{Chunk: &pluginv1.UploadChunk_Data{Data: append([]byte(nil), buf[:n]...)}}); err != nil {
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
