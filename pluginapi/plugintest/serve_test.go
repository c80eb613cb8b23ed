package plugintest_test

import (
	"context"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

type osImpl struct{}

func (osImpl) GetInfo(context.Context) (*pluginv1.PluginInfo, error) {
	return &pluginv1.PluginInfo{Name: "in-process", Kind: pluginv1.Kind_KIND_OS}, nil
}

func (osImpl) Health(context.Context) (*pluginv1.HealthResponse, error) {
	return &pluginv1.HealthResponse{State: pluginv1.HealthResponse_STATE_OK}, nil
}

func (osImpl) Render(_ context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	return &pluginv1.RenderResponse{UserData: []byte("hello " + req.GetUsername())}, nil
}

func TestServeOS(t *testing.T) {
	conn := plugintest.ServeOS(t, osImpl{})
	resp, err := conn.OS().Render(t.Context(), &pluginv1.RenderRequest{Username: "runner"})
	if err != nil || string(resp.GetUserData()) != "hello runner" {
		t.Errorf("Render = %v, %v; want user-data %q", resp, err, "hello runner")
	}
	info, err := conn.Info().GetInfo(t.Context())
	if err != nil || info.GetName() != "in-process" {
		t.Errorf("GetInfo = %v, %v; want name in-process", info, err)
	}
	// The raw connection reaches the same server; a service the plugin
	// does not serve is Unimplemented, as from a real binary.
	_, err = pluginv1.NewTransportClient(conn.ClientConn()).WaitReady(t.Context(), &pluginv1.WaitReadyRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("Transport.WaitReady on an OS plugin = %v, want Unimplemented", err)
	}
}
