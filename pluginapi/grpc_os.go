package pluginapi

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// osGRPCPlugin binds the OS service into go-plugin.
type osGRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl OSPlugin // nil on the client side
}

func (p *osGRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterOSServer(s, &osServer{impl: p.impl})
	return nil
}

func (p *osGRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &osClient{infoClient: infoClient{rpc: pluginv1.NewInfoClient(cc)}, rpc: pluginv1.NewOSClient(cc)}, nil
}

type osServer struct {
	pluginv1.UnimplementedOSServer
	impl OSPlugin
}

func (s *osServer) Render(ctx context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	return s.impl.Render(ctx, req)
}

// osClient implements OSPlugin over gRPC.
type osClient struct {
	infoClient
	rpc pluginv1.OSClient
}

func (c *osClient) Render(ctx context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	return c.rpc.Render(ctx, req)
}
