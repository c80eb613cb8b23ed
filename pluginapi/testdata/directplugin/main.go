// Command directplugin is the transport plugin that pluginapi's direct
// output tests start as a real process. Its Exec ignores the target and
// interprets the command:
//
//	bytes N SEED    write N pseudo-random bytes (SEED) to stdout in writes
//	                of varying size, then exit 0
//	interleave N    write "out i" to stdout and "err i" to stderr, N times
//	kind            write the Go types of ExecIO.Stdout and Stderr
//	hang            write "started", wait for cancellation, exit with TERM
//	late N          write N bytes, return, and keep writing from a
//	                goroutine that outlived the Exec (must be refused)
//	linger          write "started", and once cancelled keep writing
//	                "after" lines until a write fails (up to 10 minutes)
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/internal/testrand"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

func main() {
	pluginapi.ServeTransport(transport{})
}

type transport struct{}

func (transport) GetInfo(context.Context) (*pluginv1.PluginInfo, error) {
	return &pluginv1.PluginInfo{
		Name:        "directplugin",
		Kind:        pluginv1.Kind_KIND_TRANSPORT,
		Version:     "0.0.1",
		ApiVersions: []uint32{pluginapi.APIVersion1},
		Description: "a transport whose commands write test output",
	}, nil
}

func (transport) Health(context.Context) (*pluginv1.HealthResponse, error) {
	return &pluginv1.HealthResponse{State: pluginv1.HealthResponse_STATE_OK}, nil
}

func (transport) WaitReady(context.Context, *pluginv1.Target) (uint32, error) { return 1, nil }

func (transport) Upload(context.Context, *pluginv1.UploadHeader, io.Reader) (*pluginv1.UploadResponse, error) {
	return nil, errors.New("directplugin: no upload")
}

func (transport) Exec(ctx context.Context, start *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
	f := strings.Fields(start.GetCommand())
	arg := func(i int) int {
		if len(f) <= i {
			return 0
		}
		n, _ := strconv.Atoi(f[i])
		return n
	}
	if len(f) == 0 {
		return nil, pluginapi.InvalidInput("command", "", "is required")
	}
	if len(start.GetOutputToken()) > 0 {
		return nil, errors.New("directplugin: the output token reached the implementation")
	}
	switch f[0] {
	case "bytes":
		data := testrand.Bytes(arg(1), uint64(arg(2)))
		sizes := []int{1, 7, 4096, 100, 65536, 1 << 20, 333}
		for i := 0; len(data) > 0; i++ {
			n := min(sizes[i%len(sizes)], len(data))
			if _, err := stdio.Stdout.Write(data[:n]); err != nil {
				return nil, fmt.Errorf("write stdout: %w", err)
			}
			data = data[n:]
		}
	case "interleave":
		for i := range arg(1) {
			if _, err := fmt.Fprintf(stdio.Stdout, "out %d\n", i); err != nil {
				return nil, err
			}
			if _, err := fmt.Fprintf(stdio.Stderr, "err %d\n", i); err != nil {
				return nil, err
			}
		}
	case "kind":
		fmt.Fprintf(stdio.Stdout, "%T %T\n", stdio.Stdout, stdio.Stderr)
	case "hang":
		fmt.Fprintln(stdio.Stdout, "started")
		<-ctx.Done()
		return &pluginv1.ExecExit{Code: 143, Signal: "TERM"}, nil
	case "linger":
		fmt.Fprintln(stdio.Stdout, "started")
		<-ctx.Done()
		for range 60000 {
			if _, err := stdio.Stdout.Write([]byte("after\n")); err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		return &pluginv1.ExecExit{Code: 143, Signal: "TERM"}, nil
	case "late":
		if _, err := stdio.Stdout.Write(make([]byte, arg(1))); err != nil {
			return nil, err
		}
		go func() {
			for range 200 {
				if _, err := stdio.Stdout.Write([]byte("late\n")); err != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
	default:
		return nil, pluginapi.InvalidInput("command", f[0], "must be bytes, interleave, kind, hang, linger or late")
	}
	return &pluginv1.ExecExit{}, nil
}
