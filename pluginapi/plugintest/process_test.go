package plugintest_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
)

func TestCheckReaped(t *testing.T) {
	// A child that exited but was not waited for is a zombie until Wait.
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	zombiePid := zombie.Process.Pid
	// Wait (and reap) only at the end of the test.
	t.Cleanup(func() { _ = zombie.Wait() })

	reaped := exec.Command("true")
	if err := reaped.Run(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		pid     int
		wantErr string
	}{
		{name: "reaped", pid: reaped.Process.Pid},
		{name: "running", pid: os.Getpid(), wantErr: "is still running"},
		{name: "zombie", pid: zombiePid, wantErr: "zombie"},
		{name: "invalid pid", pid: 0, wantErr: "must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := plugintest.CheckReaped(tt.pid)
			if tt.name == "zombie" {
				// The child may not have exited yet: wait until it is a
				// zombie (it never leaves that state before Wait).
				for err != nil && strings.Contains(err.Error(), "is still running") {
					time.Sleep(10 * time.Millisecond)
					err = plugintest.CheckReaped(tt.pid)
				}
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("CheckReaped(%d) = %v, want nil", tt.pid, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("CheckReaped(%d) = %v, want an error containing %q", tt.pid, err, tt.wantErr)
			}
		})
	}
}
