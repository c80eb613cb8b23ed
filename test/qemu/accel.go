//go:build linux

package qemu

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// KVMDevice is the device DetectAccel checks before it runs its probe.
const KVMDevice = "/dev/kvm"

// KVMProbeTimeout bounds DetectAccel's probe boot. A usable KVM prints the
// kernel's first line in well under a second.
const KVMProbeTimeout = 10 * time.Second

// kernelBanner is the kernel's first printk line, printed by 64-bit C code:
// a guest that prints it made it through the switch to long mode, where a
// KVM without working nested virtualisation hangs.
const kernelBanner = "Linux version"

// DetectAccel decides whether qemu (a path or a name in PATH; "" means
// DefaultQEMU) can run kernel under KVM, and says why in a sentence for
// logs. It returns AccelKVM only when KVMDevice opens read-write and a
// probe boot of kernel (earlyprintk on the serial port, no disk, 256 MiB)
// prints the kernel's banner within KVMProbeTimeout; otherwise AccelTCG.
// It returns an error only for a missing QEMU or an unreadable kernel.
// The probe takes a fraction of a second on a working KVM and
// KVMProbeTimeout on a broken one: call it once and pass the result in
// Options.Accel when booting many guests.
func DetectAccel(ctx context.Context, qemu, kernel string) (Accel, string, error) {
	if qemu == "" {
		qemu = DefaultQEMU
	}
	bin, err := exec.LookPath(qemu)
	if err != nil {
		return "", "", fmt.Errorf("detect accelerator: %s not found (%v): install the Debian package qemu-system-x86", qemu, err)
	}
	if kernel, err = readableFile("Kernel", kernel); err != nil {
		return "", "", fmt.Errorf("detect accelerator: %w", err)
	}
	return detectAccel(ctx, bin, kernel, KVMDevice)
}

func detectAccel(ctx context.Context, bin, kernel, device string) (Accel, string, error) {
	f, err := os.OpenFile(device, os.O_RDWR, 0)
	if err != nil {
		return AccelTCG, fmt.Sprintf("tcg: KVM unusable: %v", err), nil
	}
	_ = f.Close()

	dir, err := os.MkdirTemp("", "qemu-kvm-probe-")
	if err != nil {
		return "", "", fmt.Errorf("detect accelerator: %w", err)
	}
	defer os.RemoveAll(dir)
	console := filepath.Join(dir, "console.log")
	logPath := filepath.Join(dir, "qemu.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return "", "", fmt.Errorf("detect accelerator: %w", err)
	}
	defer logFile.Close()

	cmd := exec.Command(bin,
		"-accel", "kvm", "-machine", "q35", "-cpu", "host", "-smp", "1", "-m", "256",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-kernel", kernel, "-append", "console=ttyS0 earlyprintk=serial,ttyS0 panic=-1",
		"-chardev", "file,id=console,path="+escapeOpt(console), "-serial", "chardev:console")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = qemuEnv()
	cmd.SysProcAttr = sysProcAttr()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return "", "", fmt.Errorf("detect accelerator: run %s: %w", bin, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	defer func() {
		killGroup(cmd.Process.Pid)
		<-done
	}()

	timeout := time.NewTimer(KVMProbeTimeout)
	defer timeout.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if out, _ := os.ReadFile(console); bytes.Contains(out, []byte(kernelBanner)) {
			return AccelKVM, fmt.Sprintf("kvm: %s ran the kernel (its banner after %s)", device, time.Since(start).Round(time.Millisecond)), nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(logPath)
			return AccelTCG, fmt.Sprintf("tcg: KVM unusable: qemu -accel kvm exited (%s): %s", cmd.ProcessState, firstLine(log)), nil
		case <-timeout.C:
			return AccelTCG, fmt.Sprintf("tcg: KVM unusable: %s opens, but a kernel under -accel kvm printed no %q within %s (no working nested virtualisation?)", device, kernelBanner, KVMProbeTimeout), nil
		case <-ctx.Done():
			return "", "", fmt.Errorf("detect accelerator: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// firstLine returns the first non-empty line of b, or "no output".
func firstLine(b []byte) string {
	for _, line := range strings.Split(string(b), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			return line
		}
	}
	return "no output"
}
