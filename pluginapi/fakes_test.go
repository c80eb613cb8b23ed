package pluginapi_test

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// fakeInfo answers GetInfo and Health with fixed values.
type fakeInfo struct {
	info   *pluginv1.PluginInfo
	health *pluginv1.HealthResponse
}

func (f *fakeInfo) GetInfo(context.Context) (*pluginv1.PluginInfo, error) { return f.info, nil }

func (f *fakeInfo) Health(context.Context) (*pluginv1.HealthResponse, error) { return f.health, nil }

// fakeOS is an OSPlugin whose Render is a test-supplied function.
type fakeOS struct {
	fakeInfo
	render func(context.Context, *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error)
}

func (f *fakeOS) Render(ctx context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	return f.render(ctx, req)
}

// fakeTransport is a TransportPlugin whose calls are test-supplied
// functions; calls counts the calls that reached the implementation.
type fakeTransport struct {
	fakeInfo
	calls     atomic.Int32
	waitReady func(context.Context, *pluginv1.Target) (uint32, error)
	exec      func(context.Context, *pluginv1.ExecStart, pluginapi.ExecIO) (*pluginv1.ExecExit, error)
	upload    func(context.Context, *pluginv1.UploadHeader, io.Reader) (*pluginv1.UploadResponse, error)
}

func (f *fakeTransport) WaitReady(ctx context.Context, target *pluginv1.Target) (uint32, error) {
	f.calls.Add(1)
	return f.waitReady(ctx, target)
}

func (f *fakeTransport) Exec(ctx context.Context, start *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
	f.calls.Add(1)
	return f.exec(ctx, start, stdio)
}

func (f *fakeTransport) Upload(ctx context.Context, header *pluginv1.UploadHeader, content io.Reader) (*pluginv1.UploadResponse, error) {
	f.calls.Add(1)
	return f.upload(ctx, header, content)
}

// testTarget is a Target with every field set, to check that targets cross
// the boundary intact.
func testTarget() *pluginv1.Target {
	return &pluginv1.Target{
		Host:       "10.0.0.7",
		Port:       22,
		Username:   "runner",
		PrivateKey: []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key\n-----END OPENSSH PRIVATE KEY-----\n"),
		Password:   "not-a-real-password",
		HostKeys:   []string{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA== host"},
		Options:    map[string]string{"keepalive": "5s"},
	}
}
