package pluginapi_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
)

// TestLaunchCancelDuringHandshake: ctx ending while a plugin has not
// answered the handshake ends the launch with ctx's error (not the start
// timeout's), and the plugin process is gone.
func TestLaunchCancelDuringHandshake(t *testing.T) {
	pidPath, _ := pidFile(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		p, err := pluginapi.Launch(ctx, pluginapi.LaunchOptions{
			Path: testPlugin, SHA256: testPluginSHA256, StartTimeout: 10 * time.Minute,
			Env: []string{"TESTPLUGIN_MODE=hang", "TESTPLUGIN_PIDFILE=" + pidPath},
		})
		if err == nil {
			p.Close()
		}
		done <- err
	}()
	// Cancel once the plugin runs (it wrote its pid file).
	var pid int
	for pid == 0 {
		if b, err := os.ReadFile(pidPath); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Launch error = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Minute): // a guard against hangs only
		t.Fatal("Launch did not return after ctx was cancelled")
	}
	if err := plugintest.CheckReaped(pid); err != nil {
		t.Errorf("after the cancelled launch: %v", err)
	}
}
