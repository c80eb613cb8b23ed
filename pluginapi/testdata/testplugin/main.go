// Command testplugin is the OS plugin that pluginapi's Launch tests start as
// a real process. TESTPLUGIN_MODE picks its behaviour:
//
//	serve (default)  serve normally; GetInfo lists os.Environ() as
//	                 capabilities "env:KEY=VALUE"
//	stdout           print a line to stdout before the handshake
//	exit             exit with status 3 before the handshake
//	hang             never start the handshake
//
// If TESTPLUGIN_PIDFILE is set, it first writes its pid there, so a test can
// check that a process which failed to launch was reaped.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

func main() {
	if f := os.Getenv("TESTPLUGIN_PIDFILE"); f != "" {
		if err := os.WriteFile(f, []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			fmt.Fprintf(os.Stderr, "testplugin: write pid file: %v\n", err)
			os.Exit(2)
		}
	}
	switch mode := os.Getenv("TESTPLUGIN_MODE"); mode {
	case "", "serve":
	case "stdout":
		fmt.Println("hello from a plugin that prints its banner")
	case "exit":
		os.Exit(3)
	case "hang":
		time.Sleep(time.Hour)
	default:
		fmt.Fprintf(os.Stderr, "testplugin: TESTPLUGIN_MODE %q: must be serve, stdout, exit or hang\n", mode)
		os.Exit(2)
	}
	pluginapi.ServeOS(envPlugin{})
}

// envPlugin reports its environment through GetInfo.
type envPlugin struct{}

func (envPlugin) GetInfo(context.Context) (*pluginv1.PluginInfo, error) {
	info := &pluginv1.PluginInfo{
		Name:        "testplugin",
		Kind:        pluginv1.Kind_KIND_OS,
		Version:     "0.0.1",
		ApiVersions: []uint32{pluginapi.APIVersion1},
		OsFamily:    "linux",
		Shells:      []string{"bash"},
		Description: "reports its environment as capabilities",
	}
	for _, kv := range os.Environ() {
		info.Capabilities = append(info.Capabilities, "env:"+kv)
	}
	return info, nil
}

func (envPlugin) Health(context.Context) (*pluginv1.HealthResponse, error) {
	return &pluginv1.HealthResponse{State: pluginv1.HealthResponse_STATE_OK, Description: "ok"}, nil
}

func (envPlugin) Render(context.Context, *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	return &pluginv1.RenderResponse{UserData: []byte("#cloud-config\n"), Datasource: pluginv1.Datasource_DATASOURCE_NOCLOUD}, nil
}
