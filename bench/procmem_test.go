package bench

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestWatchTreeSeesChildren(t *testing.T) {
	// bash starts sleep as a child; both must be reported with a peak.
	cmd := exec.Command("bash", "-c", "sleep 0.5; true")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bash (Debian package bash): %v", err)
	}
	w, err := WatchTree(context.Background(), cmd.Process.Pid, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	peaks := w.Stop()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int64{}
	for _, p := range peaks {
		seen[p.Exe] = p.HWMKiB
	}
	for _, exe := range []string{"bash", "sleep"} {
		if seen[exe] <= 0 {
			t.Errorf("no positive peak for %s; peaks: %+v", exe, peaks)
		}
	}
}

func TestWatchTreeValidates(t *testing.T) {
	tests := []struct {
		pid      int
		interval time.Duration
		want     string
	}{
		{0, time.Millisecond, "pid 0: must be positive"},
		{1, time.Microsecond, "interval 1µs: must be at least 1ms"},
	}
	for _, tt := range tests {
		_, err := WatchTree(context.Background(), tt.pid, tt.interval)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("WatchTree(%d, %s) error = %v, want %q", tt.pid, tt.interval, err, tt.want)
		}
	}
}

func TestWatchTreeCountsCPU(t *testing.T) {
	// A busy loop of up to a second of CPU must show up as CPU time.
	cmd := exec.Command("bash", "-c", "end=$((SECONDS+1)); while [ $SECONDS -lt $end ]; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start bash (Debian package bash): %v", err)
	}
	w, err := WatchTree(context.Background(), cmd.Process.Pid, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	var cpu time.Duration
	for _, p := range w.Stop() {
		if p.Exe == "bash" {
			cpu = max(cpu, p.CPU)
		}
	}
	if cpu <= 0 {
		t.Fatalf("bash used no CPU according to the watch; want a positive CPU time")
	}
}
