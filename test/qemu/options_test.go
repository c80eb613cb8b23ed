package qemu

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeFiles writes placeholder kernel and disk files: validation only
// checks that they are readable regular files.
func fakeFiles(t *testing.T) (kernel, disk string) {
	t.Helper()
	dir := t.TempDir()
	kernel, disk = filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "disk.qcow2")
	for _, p := range []string{kernel, disk} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return kernel, disk
}

// needQEMU fails the test when qemu-system-x86_64 is missing.
func needQEMU(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath(DefaultQEMU)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package qemu-system-x86 (microvm/install-deps.sh installs it)", DefaultQEMU)
	}
	return p
}

func TestOptionsDefaults(t *testing.T) {
	qemu := needQEMU(t)
	kernel, disk := fakeFiles(t)
	c, err := Options{Kernel: kernel, Disk: disk}.validate()
	if err != nil {
		t.Fatal(err)
	}
	want := config{
		qemu: qemu, kernel: kernel, disk: disk, diskFormat: "qcow2", cpus: 2, memoryMiB: 1024,
		machine: "q35", accel: AccelAuto, sshHost: "127.0.0.1", sshPort: 0, bootTimeout: 5 * time.Minute,
	}
	if c != want {
		t.Errorf("validate() =\n%+v\nwant\n%+v", c, want)
	}
}

func TestOptionsRejectInvalid(t *testing.T) {
	needQEMU(t)
	kernel, disk := fakeFiles(t)
	valid := Options{Kernel: kernel, Disk: disk}
	with := func(edit func(o *Options)) Options {
		o := valid
		edit(&o)
		return o
	}
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		{"missing qemu", with(func(o *Options) { o.QEMU = "/nonexistent/qemu" }), []string{"option QEMU", "/nonexistent/qemu", "qemu-system-x86"}},
		{"no kernel", with(func(o *Options) { o.Kernel = "" }), []string{"option Kernel", "required"}},
		{"kernel missing", with(func(o *Options) { o.Kernel = "/nonexistent/vmlinuz" }), []string{"option Kernel", "/nonexistent/vmlinuz", "readable file"}},
		{"kernel is a directory", with(func(o *Options) { o.Kernel = t.TempDir() }), []string{"option Kernel", "regular file"}},
		{"initrd missing", with(func(o *Options) { o.Initrd = "/nonexistent/initrd" }), []string{"option Initrd", "/nonexistent/initrd"}},
		{"cmdline with newline", with(func(o *Options) { o.KernelCmdline = "console=ttyS0\ninit=/bin/sh" }), []string{"option KernelCmdline", "control characters"}},
		{"cmdline too long", with(func(o *Options) { o.KernelCmdline = strings.Repeat("a", 2049) }), []string{"option KernelCmdline", "2048"}},
		{"no disk", with(func(o *Options) { o.Disk = "" }), []string{"option Disk", "required"}},
		{"disk missing", with(func(o *Options) { o.Disk = "/nonexistent/disk" }), []string{"option Disk", "/nonexistent/disk"}},
		{"disk format", with(func(o *Options) { o.DiskFormat = "vmdk" }), []string{"option DiskFormat", `"vmdk"`, "qcow2 or raw"}},
		{"bad seed", with(func(o *Options) { o.Seed = &Seed{Datasource: "Azure", UserData: []byte("x")} }), []string{"option Seed.Datasource", `"Azure"`, "NoCloud"}},
		{"negative CPUs", with(func(o *Options) { o.CPUs = -1 }), []string{"option CPUs", "-1", "1..64"}},
		{"too many CPUs", with(func(o *Options) { o.CPUs = 65 }), []string{"option CPUs", "65", "1..64"}},
		{"too little memory", with(func(o *Options) { o.MemoryMiB = 100 }), []string{"option MemoryMiB", "100", "256..65536"}},
		{"too much memory", with(func(o *Options) { o.MemoryMiB = 70000 }), []string{"option MemoryMiB", "70000"}},
		{"microvm machine", with(func(o *Options) { o.Machine = "microvm" }), []string{"option Machine", `"microvm"`, "q35"}},
		{"pc machine", with(func(o *Options) { o.Machine = "pc" }), []string{"option Machine", `"pc"`}},
		{"unknown accel", with(func(o *Options) { o.Accel = "hvf" }), []string{"option Accel", `"hvf"`, "auto, kvm or tcg"}},
		{"ssh on all interfaces", with(func(o *Options) { o.SSHAddr = "0.0.0.0:2222" }), []string{"option SSHAddr", "0.0.0.0:2222", "loopback"}},
		{"ssh host name", with(func(o *Options) { o.SSHAddr = "localhost:2222" }), []string{"option SSHAddr", "localhost:2222", "loopback"}},
		{"ssh IPv6 loopback", with(func(o *Options) { o.SSHAddr = "[::1]:2222" }), []string{"option SSHAddr", "IPv4 loopback"}},
		{"ssh port range", with(func(o *Options) { o.SSHAddr = "127.0.0.1:70000" }), []string{"option SSHAddr", "70000", "0..65535"}},
		{"ssh no port", with(func(o *Options) { o.SSHAddr = "127.0.0.1" }), []string{"option SSHAddr", "host:port"}},
		{"console dir missing", with(func(o *Options) { o.ConsolePath = "/nonexistent/dir/console.log" }), []string{"option ConsolePath", "/nonexistent/dir/console.log"}},
		{"boot timeout short", with(func(o *Options) { o.BootTimeout = 10 * time.Millisecond }), []string{"option BootTimeout", "10ms", "1s..1h"}},
		{"boot timeout long", with(func(o *Options) { o.BootTimeout = 2 * time.Hour }), []string{"option BootTimeout", "2h0m0s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.opts.validate()
			if err == nil {
				t.Fatalf("validate(%+v) succeeded, want an error", tt.opts)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestOptionsAcceptVariants(t *testing.T) {
	needQEMU(t)
	kernel, disk := fakeFiles(t)
	tests := []struct {
		name  string
		opts  Options
		check func(t *testing.T, c config)
	}{
		{"versioned q35", Options{Machine: "pc-q35-7.2"}, func(t *testing.T, c config) {
			if c.machine != "pc-q35-7.2" {
				t.Errorf("machine %q", c.machine)
			}
		}},
		{"other loopback address and port", Options{SSHAddr: "127.12.0.7:2222"}, func(t *testing.T, c config) {
			if c.sshHost != "127.12.0.7" || c.sshPort != 2222 {
				t.Errorf("ssh %s:%d", c.sshHost, c.sshPort)
			}
		}},
		{"raw disk, tcg, small guest", Options{DiskFormat: "raw", Accel: AccelTCG, CPUs: 1, MemoryMiB: 256}, func(t *testing.T, c config) {
			if c.diskFormat != "raw" || c.accel != AccelTCG || c.cpus != 1 || c.memoryMiB != 256 {
				t.Errorf("config %+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.Kernel, o.Disk = kernel, disk
			c, err := o.validate()
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}
