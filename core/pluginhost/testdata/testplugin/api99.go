package main

import (
	"context"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// serveAPI99 serves the Info service as plugin API version 99 only, like a
// plugin built for a future contract this core does not speak.
func serveAPI99(impl pluginapi.InfoPlugin) {
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig:  pluginapi.Handshake(),
		VersionedPlugins: map[int]plugin.PluginSet{99: {pluginapi.InfoKey: &infoV99{impl: impl}}},
		GRPCServer:       plugin.DefaultGRPCServer,
		Logger:           pluginapi.Logger(),
	})
}

// infoV99 registers the Info service with go-plugin.
type infoV99 struct {
	plugin.NetRPCUnsupportedPlugin
	impl pluginapi.InfoPlugin
}

func (p *infoV99) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterInfoServer(s, infoServer{impl: p.impl})
	return nil
}

func (p *infoV99) GRPCClient(context.Context, *plugin.GRPCBroker, *grpc.ClientConn) (any, error) {
	return nil, nil
}

type infoServer struct {
	pluginv1.UnimplementedInfoServer
	impl pluginapi.InfoPlugin
}

func (s infoServer) GetInfo(ctx context.Context, _ *pluginv1.GetInfoRequest) (*pluginv1.PluginInfo, error) {
	return s.impl.GetInfo(ctx)
}

func (s infoServer) Health(ctx context.Context, _ *pluginv1.HealthRequest) (*pluginv1.HealthResponse, error) {
	return s.impl.Health(ctx)
}
