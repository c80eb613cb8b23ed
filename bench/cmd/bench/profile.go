package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/pprof"
	"strings"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/stages"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// hostPlugins gives stages.Run the plugins of a pluginhost.Host, as the
// core's run command does.
type hostPlugins struct{ host *pluginhost.Host }

func (p hostPlugins) OS(ctx context.Context, name string) (pluginapi.OSPlugin, error) {
	pl, err := p.host.OpenByName(ctx, pluginhost.KindOS, name)
	if err != nil {
		return nil, err
	}
	return pl.OS()
}

func (p hostPlugins) OSForShell(ctx context.Context, shell string) (pluginapi.OSPlugin, error) {
	pl, err := p.host.OpenForShell(ctx, shell)
	if err != nil {
		return nil, err
	}
	return pl.OS()
}

func (p hostPlugins) Transport(ctx context.Context, name string) (pluginapi.TransportPlugin, error) {
	pl, err := p.host.OpenByName(ctx, pluginhost.KindTransport, name)
	if err != nil {
		return nil, err
	}
	return pl.Transport()
}

func (p hostPlugins) Close() { p.host.Close() }

// profileRun runs the run stage's core side in this process under the CPU
// profiler (kubeconfig parsing, clients, plugin host, stages.Run; the
// plugin and sshd are other processes) and returns the head of
// `go tool pprof -top`. It returns "" and logs when profiling fails: the
// profile explains a figure, it is not one.
func (s *suite) profileRun(ctx context.Context, h *heldJob, script string, n int) string {
	if n == 0 {
		return ""
	}
	env := map[string]string{}
	for _, kv := range h.env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	lookup := jobenv.Lookup(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	f, err := os.CreateTemp(s.dir, "run-*.cpu.pprof")
	if err != nil {
		logf("profile: %v", err)
		return ""
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.StartCPUProfile(f); err != nil {
		logf("profile: %v", err)
		return ""
	}
	for i := 0; i < n; i++ {
		clients, err := kube.New(kube.Options{Kubeconfig: s.bed.Kubeconfig, Namespace: s.bed.Namespace})
		if err != nil {
			pprof.StopCPUProfile()
			logf("profile: %v", err)
			return ""
		}
		host, err := pluginhost.New(pluginhost.Options{Dir: s.bed.PluginDir})
		if err != nil {
			pprof.StopCPUProfile()
			logf("profile: %v", err)
			return ""
		}
		plugins := hostPlugins{host}
		err = stages.Run(ctx, lookup, clients, plugins, stages.RunOptions{NamePrefix: "runner", Script: script, Stage: "step_script"}, io.Discard, io.Discard)
		plugins.Close()
		if err != nil {
			pprof.StopCPUProfile()
			logf("profile: run %d: %v", i, err)
			return ""
		}
	}
	pprof.StopCPUProfile()
	self, err := os.Executable()
	if err != nil {
		logf("profile: %v", err)
		return ""
	}
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", self, f.Name()).CombinedOutput()
	if err != nil {
		logf("profile: go tool pprof: %v\n%s", err, out)
		return ""
	}
	return string(out)
}
