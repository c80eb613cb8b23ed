package conformance

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// harness is one launched plugin under test and what the kit learnt about
// it so far.
type harness struct {
	path         string
	kind         pluginv1.Kind
	env          []string
	startTimeout time.Duration
	callTimeout  time.Duration

	log     plugintest.SyncBuffer
	secrets secrets
	plugin  *pluginapi.Plugin
	pid     int
	info    *pluginv1.PluginInfo
}

func newHarness(path string, kind pluginv1.Kind, env []string, startTimeout, callTimeout time.Duration) *harness {
	if callTimeout <= 0 {
		callTimeout = DefaultCallTimeout
	}
	return &harness{path: path, kind: kind, env: pluginEnv(env), startTimeout: startTimeout, callTimeout: callTimeout, info: &pluginv1.PluginInfo{}}
}

// defaultPath is the PATH the core gives plugins when it has none itself.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// pluginEnv is what the core passes a plugin, PATH and the log level, plus
// env. The log level is trace unless env sets one, so that debug logging
// is checked for secrets too.
func pluginEnv(env []string) []string {
	has := func(key string) bool {
		return slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, key+"=") })
	}
	var out []string
	if !has("PATH") {
		path := os.Getenv("PATH")
		if path == "" {
			path = defaultPath
		}
		out = append(out, "PATH="+path)
	}
	if !has(pluginapi.LogLevelEnv) {
		out = append(out, pluginapi.LogLevelEnv+"=trace")
	}
	return append(out, env...)
}

// ctx returns a context for one call, bounded by the call timeout.
func (h *harness) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), h.callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// expectedName is the plugin name its binary name promises.
func (h *harness) expectedName() (string, error) {
	base := filepath.Base(h.path)
	name, ok := strings.CutPrefix(base, pluginapi.BinaryPrefix)
	if !ok || name == "" {
		return "", fmt.Errorf("binary %q: its name must be %s<name>: the core discovers plugins by that prefix", base, pluginapi.BinaryPrefix)
	}
	return name, nil
}

// runCommon launches the plugin and runs the checks every plugin kind
// shares, up to Health. Launching and GetInfo happen in t itself, so that
// `go test -run` may pick any subtest; the subtests judge the results. It
// reports whether the plugin is up, so the caller can go on.
func (h *harness) runCommon(t *testing.T) bool {
	t.Helper()
	t.Cleanup(h.close)
	launchErr := h.launch(t)
	t.Run("Launch", func(t *testing.T) { h.testLaunch(t, launchErr) })
	if launchErr != nil {
		t.Errorf("the plugin did not start: %v", launchErr)
		return false
	}
	info, infoErr := h.getInfo(t)
	t.Run("APIVersion", h.testAPIVersion)
	t.Run("GetInfo", func(t *testing.T) { h.testGetInfo(t, info, infoErr) })
	t.Run("Health", h.testHealth)
	t.Run("OtherKindUnimplemented", h.testOtherKind)
	return true
}

// runFinal closes the plugin and checks that it is gone and that its log
// holds no secret.
func (h *harness) runFinal(t *testing.T) {
	t.Helper()
	t.Run("Close", h.testClose)
	t.Run("NoSecretsInLog", h.testNoSecretsInLog)
	if t.Failed() {
		t.Logf("plugin log (secrets redacted):\n%s", tail(h.secrets.redact(h.log.String()), 80))
	}
}

func (h *harness) close() {
	if h.plugin != nil {
		h.plugin.Close()
	}
}

// launch starts the plugin the way the core does.
func (h *harness) launch(t *testing.T) error {
	if _, err := h.expectedName(); err != nil {
		return err
	}
	sum, err := fileSHA256(h.path)
	if err != nil {
		return err
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "plugin", Output: &h.log, Level: hclog.Trace})
	p, err := pluginapi.Launch(h.ctx(t), pluginapi.LaunchOptions{
		Path: h.path, SHA256: sum, Logger: logger, Env: h.env, StartTimeout: h.startTimeout,
	})
	if err != nil {
		return fmt.Errorf("launch (checksum, handshake, AutoMTLS): %w", err)
	}
	h.plugin = p
	h.pid = p.Pid()
	return nil
}

func (h *harness) testLaunch(t *testing.T, launchErr error) {
	if launchErr != nil {
		t.Fatal(launchErr)
	}
	if h.pid <= 0 {
		t.Errorf("launched plugin has no pid (%d)", h.pid)
	}
	if err := h.plugin.Ping(); err != nil {
		t.Errorf("ping after launch: %v", err)
	}
}

// getInfo fetches the plugin's info for the checks that depend on it.
func (h *harness) getInfo(t *testing.T) (*pluginv1.PluginInfo, error) {
	info, err := h.plugin.Info()
	if err != nil {
		return nil, err
	}
	got, err := info.GetInfo(h.ctx(t))
	if err != nil {
		return nil, fmt.Errorf("GetInfo: %w", err)
	}
	h.info = got
	return got, nil
}

func (h *harness) testAPIVersion(t *testing.T) {
	if got := h.plugin.APIVersion(); got != pluginapi.APIVersion1 {
		t.Errorf("negotiated API version %d, want %d: serve with pluginapi.ServeOS/ServeTransport", got, pluginapi.APIVersion1)
	}
}

func (h *harness) testGetInfo(t *testing.T, got *pluginv1.PluginInfo, err error) {
	if err != nil {
		t.Fatal(err)
	}
	name, _ := h.expectedName()
	if got.GetName() != name {
		t.Errorf("GetInfo name %q, want %q (the binary is %s)", got.GetName(), name, filepath.Base(h.path))
	}
	if got.GetKind() != h.kind {
		t.Errorf("GetInfo kind %v, want %v", got.GetKind(), h.kind)
	}
	if !isSemver(got.GetVersion()) {
		t.Errorf("GetInfo version %q: must be a semantic version such as 1.2.0 (no leading v)", got.GetVersion())
	}
	if !slices.Contains(got.GetApiVersions(), uint32(pluginapi.APIVersion1)) {
		t.Errorf("GetInfo api_versions %v: must contain %d", got.GetApiVersions(), pluginapi.APIVersion1)
	}
	if h.kind == pluginv1.Kind_KIND_OS {
		if got.GetOsFamily() == "" {
			t.Error("GetInfo os_family is empty: an OS plugin names its family (linux, windows, ...)")
		}
		if len(got.GetShells()) == 0 {
			t.Error("GetInfo shells is empty: an OS plugin names at least one shell (bash, sh, pwsh)")
		}
	}
	if h.secrets.find(got.String()) != nil {
		t.Error("GetInfo carries a secret")
	}
}

func (h *harness) testHealth(t *testing.T) {
	info, err := h.plugin.Info()
	if err != nil {
		t.Fatal(err)
	}
	got, err := info.Health(h.ctx(t))
	if err != nil {
		t.Fatalf("Health: %v", err)
	}
	if got.GetState() != pluginv1.HealthResponse_STATE_OK {
		t.Errorf("Health state %v (%q), want STATE_OK", got.GetState(), got.GetDescription())
	}
}

// testOtherKind checks that the service of the other kind is not served:
// the core relies on PluginInfo.Kind, and a plugin serves exactly one kind.
func (h *harness) testOtherKind(t *testing.T) {
	var err error
	switch h.kind {
	case pluginv1.Kind_KIND_OS:
		tr, derr := h.plugin.Transport()
		if derr != nil {
			t.Fatal(derr)
		}
		_, err = tr.WaitReady(h.ctx(t), &pluginv1.Target{Host: "127.0.0.1", Port: 1, HostKeys: []string{"x"}})
	default:
		osp, derr := h.plugin.OS()
		if derr != nil {
			t.Fatal(derr)
		}
		_, err = osp.Render(h.ctx(t), &pluginv1.RenderRequest{})
	}
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("a call to the other kind's service returned %v, want code Unimplemented", err)
	}
}

func (h *harness) testClose(t *testing.T) {
	if h.plugin == nil {
		t.Fatal("no plugin to close")
	}
	h.plugin.Close()
	if h.pid > 0 {
		if err := plugintest.CheckReaped(h.pid); err != nil {
			t.Errorf("after Close: %v", err)
		}
	}
	if !h.plugin.Exited() {
		t.Error("the plugin process has not exited after Close")
	}
}

func (h *harness) testNoSecretsInLog(t *testing.T) {
	if found := h.secrets.find(h.log.String()); len(found) > 0 {
		t.Errorf("the plugin's log contains secrets handed to it: %s (plugins must never log passwords or private keys)", strings.Join(found, ", "))
	}
}

// checkErr fails t if err carries a secret.
func (h *harness) checkErr(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if found := h.secrets.find(err.Error()); len(found) > 0 {
		t.Errorf("%s: the error contains secrets: %s", what, strings.Join(found, ", "))
	}
}

func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open plugin binary: %w", err)
	}
	defer func() { _ = f.Close() }()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, fmt.Errorf("hash plugin binary %s: %w", path, err)
	}
	return h.Sum(nil), nil
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
