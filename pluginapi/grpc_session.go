package pluginapi

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// sessionGRPCPlugin binds the Session service into go-plugin.
type sessionGRPCPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	srv *sessionServer // nil on the client side
}

func (p *sessionGRPCPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	pluginv1.RegisterSessionServer(s, &sessionService{srv: p.srv})
	return nil
}

func (p *sessionGRPCPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, cc *grpc.ClientConn) (any, error) {
	return pluginv1.NewSessionClient(cc), nil
}

type sessionService struct {
	pluginv1.UnimplementedSessionServer
	srv *sessionServer
}

func (s *sessionService) Detach(_ context.Context, req *pluginv1.DetachRequest) (*pluginv1.DetachResponse, error) {
	opts := DetachOptions{
		IdleTimeout: time.Duration(req.GetIdleTimeoutMs()) * time.Millisecond,
		MaxLifetime: time.Duration(req.GetMaxLifetimeMs()) * time.Millisecond,
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	pid, err := s.srv.detach(opts)
	if err != nil {
		return nil, status.Error(codes.Internal, fmt.Sprintf("detach: %v", err))
	}
	return &pluginv1.DetachResponse{Pid: int64(pid)}, nil
}
