package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ProcPeak is the peak resident set of one process of a watched tree.
type ProcPeak struct {
	PID int
	// Exe is the base name of the process's executable.
	Exe string
	// HWMKiB is the largest VmHWM (peak resident set size, KiB) seen.
	HWMKiB int64
	// CPU is the user + system CPU time the process had used at the last
	// sample.
	CPU time.Duration
}

// TreeWatch samples the peak RSS (VmHWM) of a process and all its
// descendants until stopped. VmHWM is itself a high-water mark kept by the
// kernel, so sampling only has to see each process once, late in its
// life; growth after the last sample of a process is missed.
type TreeWatch struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu    sync.Mutex
	peaks map[int]ProcPeak
}

// WatchTree starts sampling the tree rooted at pid every interval (at
// least 1ms). Call Stop to end it and read the peaks.
func WatchTree(ctx context.Context, pid int, interval time.Duration) (*TreeWatch, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("watch tree pid %d: must be positive", pid)
	}
	if interval < time.Millisecond {
		return nil, fmt.Errorf("watch tree interval %s: must be at least 1ms", interval)
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &TreeWatch{cancel: cancel, done: make(chan struct{}), peaks: map[int]ProcPeak{}}
	go func() {
		defer close(w.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			w.sample(pid)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return w, nil
}

// Sample takes one sample at once (e.g. right before the root is reaped).
func (w *TreeWatch) Sample(pid int) { w.sample(pid) }

func (w *TreeWatch) sample(root int) {
	for _, pid := range descendants(root) {
		exe, hwm, err := readStatus(pid)
		if err != nil {
			continue // it ended between listing and reading
		}
		cpu, cpuErr := readCPU(pid)
		w.mu.Lock()
		// A new executable (a forked child that called exec) is a new
		// memory image: its VmHWM starts again, so the entry does too.
		p, ok := w.peaks[pid]
		if !ok || p.Exe != exe {
			p = ProcPeak{PID: pid, Exe: exe}
		}
		p.HWMKiB = max(p.HWMKiB, hwm)
		if cpuErr == nil {
			p.CPU = max(p.CPU, cpu)
		}
		w.peaks[pid] = p
		w.mu.Unlock()
	}
}

// Stop ends the sampling and returns the peak of every process seen.
func (w *TreeWatch) Stop() []ProcPeak {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]ProcPeak, 0, len(w.peaks))
	for _, p := range w.peaks {
		out = append(out, p)
	}
	return out
}

// descendants returns root and every process below it, from the
// children lists of each task in /proc.
func descendants(root int) []int {
	out := []int{root}
	for i := 0; i < len(out); i++ {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", out[i]))
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			for _, s := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(s); err == nil {
					out = append(out, n)
				}
			}
		}
	}
	return out
}

// readStatus returns the executable's base name and VmHWM (KiB) of pid.
func readStatus(pid int) (string, int64, error) {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil {
		return "", 0, fmt.Errorf("read exe of pid %d: %w", pid, err)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", 0, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kib, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return "", 0, fmt.Errorf("pid %d VmHWM %q: not a number of kB", pid, v)
			}
			return filepath.Base(strings.TrimSuffix(exe, " (deleted)")), kib, nil
		}
	}
	return "", 0, fmt.Errorf("pid %d: no VmHWM in /proc/%d/status (a zombie or kernel thread?)", pid, pid)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's CPU times (100
// on every Linux architecture Go supports).
const clockTicks = 100

// readCPU returns utime + stime of pid from /proc/<pid>/stat.
func readCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	// The command name may contain spaces and parentheses: the fields
	// start after the last ')'. utime and stime are fields 14 and 15,
	// the 12th and 13th after it.
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 13 {
		return 0, fmt.Errorf("pid %d: malformed /proc/%d/stat", pid, pid)
	}
	var ticks int64
	for _, s := range f[11:13] {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("pid %d: CPU time %q in /proc/%d/stat is not a number", pid, s, pid)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}
