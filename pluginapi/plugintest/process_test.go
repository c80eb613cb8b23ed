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

func TestCheckExited(t *testing.T) {
	// A child that exited but was not waited for stays a zombie until Wait.
	zombie := exec.Command("true")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = zombie.Wait() })
	// A child that runs until the test ends.
	running := exec.Command("sleep", "600")
	if err := running.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = running.Process.Kill(); _ = running.Wait() })
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
		{name: "zombie", pid: zombie.Process.Pid},
		{name: "running child", pid: running.Process.Pid, wantErr: "is still running"},
		{name: "this process", pid: os.Getpid(), wantErr: "is still running"},
		{name: "invalid pid", pid: -1, wantErr: "pid -1: must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "zombie" {
				// Until the child has exited it is running; it never
				// leaves the zombie state before Wait.
				for err := plugintest.CheckReaped(tt.pid); err == nil || !strings.Contains(err.Error(), "zombie"); err = plugintest.CheckReaped(tt.pid) {
					time.Sleep(10 * time.Millisecond)
				}
			}
			err := plugintest.CheckExited(tt.pid)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("CheckExited(%d) = %v, want nil", tt.pid, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("CheckExited(%d) = %v, want an error containing %q", tt.pid, err, tt.wantErr)
			}
		})
	}
}
