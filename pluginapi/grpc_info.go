package pluginapi

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// infoGRPCPlugin binds the Info service into go-plugin.
type infoGRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl InfoPlugin // nil on the client side
}

func (p *infoGRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterInfoServer(s, &infoServer{impl: p.impl})
	return nil
}

func (p *infoGRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return &infoClient{rpc: pluginv1.NewInfoClient(cc)}, nil
}

type infoServer struct {
	pluginv1.UnimplementedInfoServer
	impl InfoPlugin
}

func (s *infoServer) GetInfo(ctx context.Context, _ *pluginv1.GetInfoRequest) (*pluginv1.PluginInfo, error) {
	return s.impl.GetInfo(ctx)
}

func (s *infoServer) Health(ctx context.Context, _ *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	return s.impl.Health(ctx)
}

// infoClient implements InfoPlugin over gRPC.
type infoClient struct {
	rpc pluginv1.InfoClient
}

func (c *infoClient) GetInfo(ctx context.Context) (*pluginv1.PluginInfo, error) {
	return c.rpc.GetInfo(ctx, &pluginv1.GetInfoRequest{})
}

func (c *infoClient) Health(ctx context.Context) (*pluginv1.HealthResponse, error) {
	return c.rpc.Health(ctx, &pluginv1.HealthRequest{})
}
