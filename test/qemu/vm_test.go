//go:build linux

package qemu

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/microvm"
)

// testLog sends each line written to it to t.Log.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	for _, line := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		w.t.Log(line)
	}
	return len(p), nil
}

// guestImage builds the debian-bookworm image, or finds it in the cache
// (see package microvm: a cold build takes 2-3 minutes and needs root).
func guestImage(t *testing.T) *microvm.Image {
	t.Helper()
	img, err := microvm.Build(t.Context(), microvm.BuildOptions{Guest: "debian-bookworm", Log: testLog{t}})
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// processesWith returns the pids of processes whose command line contains s.
func processesWith(s string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if pid, perr := strconv.Atoi(e.Name()); perr == nil && err == nil && strings.Contains(string(cmdline), s) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func TestDetectAccelWithoutKVM(t *testing.T) {
	qemu := needQEMU(t)
	kernel, _ := fakeFiles(t)
	accel, why, err := detectAccel(context.Background(), qemu, kernel, "/nonexistent/kvm")
	if err != nil {
		t.Fatal(err)
	}
	if accel != AccelTCG || !strings.Contains(why, "/nonexistent/kvm") {
		t.Errorf("detectAccel without a KVM device = %s (%q), want tcg naming the device", accel, why)
	}
}

func TestDetectAccelRejects(t *testing.T) {
	needQEMU(t)
	kernel, _ := fakeFiles(t)
	tests := []struct {
		name, qemu, kernel string
		want               []string
	}{
		{"missing qemu", "/nonexistent/qemu", kernel, []string{"/nonexistent/qemu", "qemu-system-x86"}},
		{"missing kernel", "", "/nonexistent/vmlinuz", []string{"Kernel", "/nonexistent/vmlinuz"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DetectAccel(context.Background(), tt.qemu, tt.kernel)
			if err == nil {
				t.Fatal("DetectAccel succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestCleanConsole(t *testing.T) {
	tests := []struct{ in, want string }{
		{"[\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mssh.service\x1b[0m.\r\n", "[  OK  ] Started ssh.service.\n"},
		{"a\x1b]0;title\x07b\n", "ab\n"},
		{"bell\x07 and \x00nul\ttab\n", "bell and nul\ttab\n"},
	}
	for _, tt := range tests {
		if got := cleanConsole([]byte(tt.in)); got != tt.want {
			t.Errorf("cleanConsole(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := tailLines("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("tailLines = %q, want %q", got, "b\nc")
	}
}

// TestBootFailureCarriesConsoleTail boots guests that cannot reach SSH
// (no root file system: the kernel panics) and checks what a caller gets:
// an error that shows the console, no QEMU left running, nothing left on
// disk.
func TestBootFailureCarriesConsoleTail(t *testing.T) {
	img := guestImage(t)
	// No initrd and a root device that does not exist: the kernel panics
	// a few seconds in, with a recognisable console line.
	const panicLine = "Kernel panic - not syncing"

	t.Run("qemu exits before SSH", func(t *testing.T) {
		console := filepath.Join(t.TempDir(), "console.log")
		vm, err := Boot(t.Context(), Options{
			Kernel: img.Kernel, Disk: img.Disk, Accel: AccelTCG, ConsolePath: console,
			// panic=1 reboots after the panic; -no-reboot turns that into an exit.
			KernelCmdline: "console=ttyS0 root=/dev/nonexistent panic=1",
			Seed:          &Seed{UserData: []byte("#cloud-config\n")},
		})
		if err == nil {
			_ = vm.Stop()
			t.Fatal("Boot succeeded, want an error")
		}
		for _, w := range []string{"qemu exited", "before sshd answered", "console (" + console + ")", panicLine} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Boot error does not contain %q:\n%v", w, err)
			}
		}
		if pids := processesWith(console); len(pids) > 0 {
			t.Errorf("QEMU still running after a failed Boot: pids %v", pids)
		}
	})

	t.Run("no SSH before the deadline", func(t *testing.T) {
		vm, err := Start(t.Context(), Options{
			Kernel: img.Kernel, Disk: img.Disk, Accel: AccelTCG,
			// panic=0 halts after the panic: QEMU keeps running, sshd never comes.
			KernelCmdline: "console=ttyS0 root=/dev/nonexistent panic=0",
			Seed:          &Seed{UserData: []byte("#cloud-config\n")},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer vm.Stop()
		dir := filepath.Dir(vm.ConsolePath())
		if fi, err := os.Stat(filepath.Join(dir, "seed.iso")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("seed in the runtime directory: %v, mode %v; want a 0600 file", err, fi)
		}

		// The deadline: once the panic is on the console, nothing more happens.
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		go func() {
			for ctx.Err() == nil && !strings.Contains(vm.ConsoleTail(200), panicLine) {
				time.Sleep(100 * time.Millisecond)
			}
			cancel()
		}()
		err = vm.WaitSSH(ctx)
		if err == nil {
			t.Fatal("WaitSSH succeeded, want an error")
		}
		for _, w := range []string{"no SSH banner on " + vm.SSHAddr(), context.Canceled.Error(), panicLine} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("WaitSSH error does not contain %q:\n%v", w, err)
			}
		}

		pid := vm.Pid()
		for i := 0; i < 2; i++ {
			if err := vm.Stop(); err != nil {
				t.Errorf("Stop #%d: %v", i+1, err)
			}
		}
		if err := vm.Wait(); err != nil {
			t.Errorf("Wait after Stop: %v, want nil", err)
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("QEMU pid %d after Stop: kill(0) = %v, want ESRCH", pid, err)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("runtime directory %s (seed, console) left after Stop: %v", dir, err)
		}
		if !strings.Contains(vm.ConsoleTail(200), panicLine) {
			t.Errorf("ConsoleTail after Stop lost the console:\n%s", vm.ConsoleTail(20))
		}
	})
}
