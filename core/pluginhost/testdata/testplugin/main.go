// Command testplugin is a gitlab-runner-kubevirt plugin for the plugin
// host's tests. It implements the real contract through pluginapi.ServeOS
// or pluginapi.ServeTransport; its identity and its misbehaviour are fixed
// at build time with -ldflags "-X main.<var>=<value>" (a plugin gets no
// configuration from the environment), so every variant is a distinct
// binary with its own sha256.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Set with -ldflags -X.
var (
	name    = "test-os"
	kind    = "os" // os | transport
	version = "1.0.0"
	shells  = "bash" // comma-separated
	health  = "ok"   // ok | degraded | failing
	// mode selects a misbehaviour: "" (none), "crash-in-render" (the
	// process dies inside Render), "stdout" (writes to stdout before the
	// handshake), "api99" (serves only plugin API version 99).
	mode = ""
)

func main() {
	switch mode {
	case "stdout":
		fmt.Println("hello from a plugin that forgot stdout carries the handshake")
	case "api99":
		serveAPI99(testPlugin{})
		return
	}
	if kind == "transport" {
		pluginapi.ServeTransport(testPlugin{})
		return
	}
	pluginapi.ServeOS(testPlugin{})
}

type testPlugin struct{}

func (testPlugin) GetInfo(context.Context) (*pluginv1.PluginInfo, error) {
	info := &pluginv1.PluginInfo{
		Name:         name,
		Kind:         pluginv1.Kind_KIND_OS,
		Version:      version,
		ApiVersions:  []uint32{pluginapi.APIVersion1},
		Capabilities: []string{"test"},
		Description:  "test plugin for core/pluginhost",
	}
	if mode == "api99" {
		info.ApiVersions = []uint32{99}
	}
	if kind == "transport" {
		info.Kind = pluginv1.Kind_KIND_TRANSPORT
		return info, nil
	}
	info.OsFamily = "linux"
	info.Shells = strings.Split(shells, ",")
	return info, nil
}

func (testPlugin) Health(context.Context) (*pluginv1.HealthResponse, error) {
	switch health {
	case "failing":
		return &pluginv1.HealthResponse{State: pluginv1.HealthResponse_STATE_FAILING, Description: "helper tool missing"}, nil
	case "degraded":
		return &pluginv1.HealthResponse{State: pluginv1.HealthResponse_STATE_DEGRADED, Description: "slow disk"}, nil
	}
	return &pluginv1.HealthResponse{State: pluginv1.HealthResponse_STATE_OK, Description: "ready"}, nil
}

func (testPlugin) Render(_ context.Context, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	if mode == "crash-in-render" {
		pluginapi.Logger().Error("crashing on purpose in Render")
		os.Exit(3)
	}
	if strings.ContainsAny(req.GetUsername(), "\n\r") {
		return nil, pluginapi.InvalidInput("username", req.GetUsername(), "must not contain a line break")
	}
	return &pluginv1.RenderResponse{
		UserData:   []byte("#cloud-config\n"),
		Datasource: pluginv1.Datasource_DATASOURCE_NOCLOUD,
		Recipe:     &pluginv1.RunRecipe{Shell: "bash", ScriptExtension: ".sh", TempDir: "/tmp", Command: "bash {script}", PathSeparator: "/"},
	}, nil
}

func (testPlugin) WaitReady(context.Context, *pluginv1.Target) (uint32, error) {
	return 0, status.Error(codes.Unimplemented, "the test transport reaches no guest")
}

func (testPlugin) Exec(context.Context, *pluginv1.ExecStart, pluginapi.ExecIO) (*pluginv1.ExecExit, error) {
	return nil, status.Error(codes.Unimplemented, "the test transport reaches no guest")
}

func (testPlugin) Upload(context.Context, *pluginv1.UploadHeader, io.Reader) (*pluginv1.UploadResponse, error) {
	return nil, status.Error(codes.Unimplemented, "the test transport reaches no guest")
}
