package pluginapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	"github.com/hashicorp/go-hclog"
)

// launch starts the test plugin and closes it when the test ends.
func launch(t *testing.T, env ...string) *pluginapi.Plugin {
	t.Helper()
	p, err := pluginapi.Launch(t.Context(), pluginapi.LaunchOptions{Path: testPlugin, SHA256: testPluginSHA256, Env: env})
	if err != nil {
		t.Fatalf("Launch: %v", err)
	}
	t.Cleanup(p.Close)
	return p
}

// pidFile returns a path for the test plugin's pid and a function that reads
// it once the plugin has written it.
func pidFile(t *testing.T) (path string, read func() int) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "pid")
	return path, func() int {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("the test plugin wrote no pid file: %v", err)
		}
		pid, err := strconv.Atoi(string(b))
		if err != nil {
			t.Fatalf("pid file %s: %v", path, err)
		}
		return pid
	}
}

func TestLaunchNegotiatesAndServes(t *testing.T) {
	p := launch(t)
	if got := p.APIVersion(); got != pluginapi.APIVersion1 {
		t.Errorf("APIVersion() = %d, want %d", got, pluginapi.APIVersion1)
	}
	if p.Path() != testPlugin {
		t.Errorf("Path() = %q, want %q", p.Path(), testPlugin)
	}
	if err := p.Ping(); err != nil {
		t.Errorf("Ping: %v", err)
	}
	info, err := p.Info()
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	got, err := info.GetInfo(t.Context())
	if err != nil {
		t.Fatalf("GetInfo: %v", err)
	}
	if got.GetName() != "testplugin" {
		t.Errorf("GetInfo().Name = %q, want testplugin", got.GetName())
	}
	osp, err := p.OS()
	if err != nil {
		t.Fatalf("OS: %v", err)
	}
	if _, err := osp.Render(t.Context(), nil); err != nil {
		t.Errorf("Render over AutoMTLS: %v", err)
	}
}

func TestLaunchChecksum(t *testing.T) {
	wrong := sha256.Sum256([]byte("not the plugin"))
	tests := []struct {
		name    string
		sum     []byte
		wantErr string
	}{
		{name: "missing", sum: nil, wantErr: "a sha256 checksum is required"},
		{name: "truncated", sum: testPluginSHA256[:16], wantErr: "a sha256 checksum is required"},
		{name: "wrong", sum: wrong[:], wantErr: "its sha256 no longer matches the pinned checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pidPath, _ := pidFile(t)
			p, err := pluginapi.Launch(t.Context(), pluginapi.LaunchOptions{
				Path: testPlugin, SHA256: tt.sum, Env: []string{"TESTPLUGIN_PIDFILE=" + pidPath},
			})
			if err == nil {
				p.Close()
				t.Fatal("Launch succeeded, want a checksum error")
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), testPlugin) {
				t.Errorf("Launch error = %q, want it to name %s and say %q", err, testPlugin, tt.wantErr)
			}
			if _, err := os.Stat(pidPath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the plugin ran although its checksum was refused (pid file: %v)", err)
			}
		})
	}
}

func TestLaunchDoesNotInheritEnvironment(t *testing.T) {
	t.Setenv("KUBECONFIG", "/secret")
	t.Setenv("CUSTOM_ENV_CI_JOB_TOKEN", "glcbt-secret")
	p := launch(t, "TESTPLUGIN_GREETING=hello", pluginapi.LogLevelEnv+"=debug")
	info, err := p.Info()
	if err != nil {
		t.Fatalf("Info: %v", err)
	}
	got, err := info.GetInfo(t.Context())
	if err != nil {
		t.Fatalf("GetInfo: %v", err)
	}
	env := map[string]string{}
	for _, c := range got.GetCapabilities() {
		if kv, ok := strings.CutPrefix(c, "env:"); ok {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	for k, want := range map[string]string{"TESTPLUGIN_GREETING": "hello", pluginapi.LogLevelEnv: "debug"} {
		if env[k] != want {
			t.Errorf("plugin env %s = %q, want %q (LaunchOptions.Env not passed)", k, env[k], want)
		}
	}
	// go-plugin's own handshake variables are expected; nothing of the
	// parent's environment is.
	goPlugin := []string{"PLUGIN_MIN_PORT", "PLUGIN_MAX_PORT", "PLUGIN_PROTOCOL_VERSIONS", "PLUGIN_CLIENT_CERT", pluginapi.Handshake().MagicCookieKey}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, leaked := env[k]; leaked && !slices.Contains(goPlugin, k) {
			t.Errorf("the parent's %s reached the plugin", k)
		}
	}
	for _, k := range []string{"KUBECONFIG", "CUSTOM_ENV_CI_JOB_TOKEN", "PATH", "HOME"} {
		if v, ok := env[k]; ok {
			t.Errorf("plugin env has %s=%q, want it absent", k, v)
		}
	}
}

func TestCloseKillsAndReaps(t *testing.T) {
	p := launch(t)
	pid := p.Pid()
	if pid <= 0 {
		t.Fatalf("Pid() = %d for a running plugin", pid)
	}
	if err := plugintest.CheckReaped(pid); err == nil {
		t.Fatalf("plugin %d is not running before Close", pid)
	}
	p.Close()
	if err := plugintest.CheckReaped(pid); err != nil {
		t.Errorf("after Close: %v", err)
	}
	if !p.Exited() {
		t.Error("Exited() = false after Close")
	}
	p.Close() // a second Close is harmless
}

func TestLaunchFailureLeavesNoProcess(t *testing.T) {
	tests := []struct {
		mode    string
		timeout time.Duration
		want    []string
	}{
		{
			mode: "stdout",
			// The error must point at the cause: a write to stdout.
			want: []string{testPlugin, "stdout", "hello from a plugin that prints its banner"},
		},
		{mode: "exit", want: []string{testPlugin, "exited before the go-plugin handshake"}},
		{mode: "hang", timeout: 3 * time.Second, want: []string{testPlugin, "timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			pidPath, readPid := pidFile(t)
			p, err := pluginapi.Launch(t.Context(), pluginapi.LaunchOptions{
				Path:         testPlugin,
				SHA256:       testPluginSHA256,
				StartTimeout: tt.timeout,
				Env:          []string{"TESTPLUGIN_MODE=" + tt.mode, "TESTPLUGIN_PIDFILE=" + pidPath},
			})
			if err == nil {
				p.Close()
				t.Fatal("Launch succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Launch error %q does not mention %q", err, w)
				}
			}
			if err := plugintest.CheckReaped(readPid()); err != nil {
				t.Errorf("after the failed launch: %v", err)
			}
		})
	}
}

func TestLaunchCancelledContext(t *testing.T) {
	pidPath, _ := pidFile(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	p, err := pluginapi.Launch(ctx, pluginapi.LaunchOptions{Path: testPlugin, SHA256: testPluginSHA256, Env: []string{"TESTPLUGIN_PIDFILE=" + pidPath}})
	if err == nil {
		p.Close()
		t.Fatal("Launch with a cancelled ctx succeeded")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Launch error = %v, want context.Canceled", err)
	}
	if b, err := os.ReadFile(pidPath); err == nil {
		pid, _ := strconv.Atoi(string(b))
		if err := plugintest.CheckReaped(pid); err != nil {
			t.Errorf("after the cancelled launch: %v", err)
		}
	}
}

// TestLaunchKeepsNormalExitsOutOfTheInfoLog: in a stage the runner log is
// the job log; a normal plugin stop must not add a line to it at info.
func TestLaunchKeepsNormalExitsOutOfTheInfoLog(t *testing.T) {
	for _, tt := range []struct {
		level hclog.Level
		want  bool
	}{{hclog.Info, false}, {hclog.Debug, true}} {
		var buf bytes.Buffer
		logger := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: tt.level})
		p, err := pluginapi.Launch(t.Context(), pluginapi.LaunchOptions{Path: testPlugin, SHA256: testPluginSHA256, Logger: logger})
		if err != nil {
			t.Fatalf("Launch: %v", err)
		}
		p.Close()
		if got := strings.Contains(buf.String(), "plugin process exited"); got != tt.want {
			t.Errorf("at level %s, log mentions the exit = %t, want %t; log:\n%s", tt.level, got, tt.want, buf.String())
		}
	}
}
