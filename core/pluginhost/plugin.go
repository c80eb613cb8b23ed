package pluginhost

import (
	"context"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Plugin is a plugin started by [Host.Open] and checked against its lock
// entry. Its OS, Transport and Info services add the plugin's name and
// advice to errors. Close it when done; [Host.Close] closes it otherwise.
type Plugin struct {
	*pluginapi.Plugin
	host  *Host
	entry Entry
	info  *pluginv1.PluginInfo
}

// Entry returns the lock entry the plugin was opened from.
func (p *Plugin) Entry() Entry { return p.entry }

// PluginInfo returns the plugin's GetInfo answer.
func (p *Plugin) PluginInfo() *pluginv1.PluginInfo { return p.info }

// Close ends the plugin and stops tracking it; a detached plugin (see
// [Host.OpenDetachable]) is not ended, only disconnected. Safe to call
// more than once.
func (p *Plugin) Close() { p.host.release(p.Plugin) }

// Info returns the plugin's Info service.
func (p *Plugin) Info() (pluginapi.InfoPlugin, error) {
	raw, err := p.Plugin.Info()
	if err != nil {
		return nil, err
	}
	return infoCaller{p: p, impl: raw}, nil
}

// OS returns the service of an OS plugin; a transport plugin is refused.
func (p *Plugin) OS() (pluginapi.OSPlugin, error) {
	if p.entry.Kind != KindOS {
		return nil, fmt.Errorf("plugin %s is a %s plugin, not an os plugin; choose an os plugin", p.entry, p.entry.Kind)
	}
	raw, err := p.Plugin.OS()
	if err != nil {
		return nil, err
	}
	return osCaller{infoCaller: infoCaller{p: p, impl: raw}, impl: raw}, nil
}

// Transport returns the service of a transport plugin; an OS plugin is
// refused.
func (p *Plugin) Transport() (pluginapi.TransportPlugin, error) {
	if p.entry.Kind != KindTransport {
		return nil, fmt.Errorf("plugin %s is a %s plugin, not a transport plugin; choose a transport plugin", p.entry, p.entry.Kind)
	}
	raw, err := p.Plugin.Transport()
	if err != nil {
		return nil, err
	}
	return transportCaller{infoCaller: infoCaller{p: p, impl: raw}, impl: raw}, nil
}

// callError adds the plugin and the method to err. A refusal of the
// request's input (pluginapi.IsInvalidInput) is returned unchanged: its
// message is for the user as is.
func (p *Plugin) callError(method string, err error) error {
	if err == nil || pluginapi.IsInvalidInput(err) {
		return err
	}
	who := fmt.Sprintf("plugin %s %s (%s)", p.entry.Name, p.entry.Version, p.Path())
	switch status.Code(err) {
	case codes.Unavailable:
		return fmt.Errorf("%s: %s: the plugin stopped answering; it exited or crashed (its last log lines are in the runner log): %w", who, method, err)
	case codes.Canceled:
		return fmt.Errorf("%s: %s: cancelled: %w", who, method, err)
	case codes.DeadlineExceeded:
		return fmt.Errorf("%s: %s: did not finish in time: %w", who, method, err)
	}
	return fmt.Errorf("%s: %s: %w", who, method, err)
}

type infoCaller struct {
	p    *Plugin
	impl pluginapi.InfoPlugin
}

// GetInfo calls the plugin and adds context to errors.
func (c infoCaller) GetInfo(ctx context.Context) (*pluginv1.PluginInfo, error) {
	r, err := c.impl.GetInfo(ctx)
	return r, c.p.callError("GetInfo", err)
}

// Health calls the plugin and adds context to errors.
func (c infoCaller) Health(ctx context.Context) (*pluginv1.HealthResponse, error) {
	r, err := c.impl.Health(ctx)
	return r, c.p.callError("Health", err)
}

type osCaller struct {
	infoCaller
	impl pluginapi.OSPlugin
}

// Render calls the plugin and adds context to errors.
func (c osCaller) Render(ctx context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	r, err := c.impl.Render(ctx, req)
	return r, c.p.callError("Render", err)
}

type transportCaller struct {
	infoCaller
	impl pluginapi.TransportPlugin
}

// WaitReady calls the plugin and adds context to errors.
func (c transportCaller) WaitReady(ctx context.Context, target *pluginv1.Target) (uint32, error) {
	n, err := c.impl.WaitReady(ctx, target)
	return n, c.p.callError("WaitReady", err)
}

// Exec calls the plugin and adds context to errors.
// ValidateTarget asks the plugin to check target without connecting (see
// pluginapi.TargetValidator).
func (c transportCaller) ValidateTarget(ctx context.Context, target *pluginv1.Target) error {
	err := pluginapi.ValidateTarget(ctx, c.impl, target)
	return c.p.callError("ValidateTarget", err)
}

func (c transportCaller) Exec(ctx context.Context, start *pluginv1.ExecStart, stdio pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
	r, err := c.impl.Exec(ctx, start, stdio)
	return r, c.p.callError("Exec", err)
}

// Upload calls the plugin and adds context to errors.
func (c transportCaller) Upload(ctx context.Context, header *pluginv1.UploadHeader, content io.Reader) (*pluginv1.UploadResponse, error) {
	r, err := c.impl.Upload(ctx, header, content)
	return r, c.p.callError("Upload", err)
}
