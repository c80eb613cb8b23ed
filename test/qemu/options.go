package qemu

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Defaults applied by Boot for zero-valued options.
const (
	DefaultQEMU        = "qemu-system-x86_64"
	DefaultMachine     = "q35"
	DefaultCPUs        = 2
	DefaultMemoryMiB   = 1024
	DefaultSSHAddr     = "127.0.0.1:0"
	DefaultBootTimeout = 5 * time.Minute
	DefaultDiskFormat  = "qcow2"
)

// Limits of the validated options.
const (
	MaxCPUs          = 64
	MinMemoryMiB     = 256
	MaxMemoryMiB     = 64 << 10
	MaxKernelCmdline = 2048 // x86 COMMAND_LINE_SIZE
	MaxBootTimeout   = time.Hour
)

// Accel is a QEMU accelerator choice.
type Accel string

// Accelerators. AccelAuto (or "") picks KVM when DetectAccel finds it
// usable, else TCG.
const (
	AccelAuto Accel = "auto"
	AccelKVM  Accel = "kvm"
	AccelTCG  Accel = "tcg"
)

// Options configures Boot. Kernel and Disk are required; every other field
// has a default.
type Options struct {
	// QEMU is the qemu-system-x86_64 binary: a path or a name looked up in
	// PATH. Default DefaultQEMU.
	QEMU string
	// Kernel and Initrd are the files for direct kernel boot (microvm's
	// vmlinuz and initrd.img). Initrd is optional.
	Kernel string
	Initrd string
	// KernelCmdline is passed with -append, e.g. the image's
	// "console=ttyS0 root=LABEL=rootfs rw". Keep console=ttyS0 in it, or
	// the console file stays empty.
	KernelCmdline string
	// Disk is the root disk image; QEMU opens it with snapshot=on, so it is
	// never modified. DiskFormat is "qcow2" (default) or "raw".
	Disk       string
	DiskFormat string
	// Seed is the first-boot data; nil boots without a seed disk.
	Seed *Seed
	// CPUs and MemoryMiB size the guest. Defaults DefaultCPUs and
	// DefaultMemoryMiB.
	CPUs      int
	MemoryMiB int
	// Machine is the QEMU machine type: "q35" (default) or a versioned
	// "pc-q35-X.Y", the types KubeVirt offers.
	Machine string
	// Accel is AccelAuto (default), AccelKVM or AccelTCG.
	Accel Accel
	// SSHAddr is the host end of the forward to the guest's port 22,
	// "host:port" with host an IPv4 loopback address (127.x.y.z). Port 0
	// picks a free port. Default DefaultSSHAddr.
	SSHAddr string
	// ConsolePath is the file the serial console is written to; its
	// directory must exist. Default: a file in the guest's private runtime
	// directory, which Stop removes.
	ConsolePath string
	// BootTimeout bounds Boot's wait for the SSH banner. Default
	// DefaultBootTimeout; at most MaxBootTimeout.
	BootTimeout time.Duration
}

var (
	machinePattern  = regexp.MustCompile(`^(q35|pc-q35-[0-9]+\.[0-9]+)$`)
	loopbackNetwork = net.IPNet{IP: net.IPv4(127, 0, 0, 0), Mask: net.CIDRMask(8, 32)}
)

// config is Options after validation and defaults.
type config struct {
	qemu          string
	kernel        string
	initrd        string
	kernelCmdline string
	disk          string
	diskFormat    string
	seed          *Seed
	cpus          int
	memoryMiB     int
	machine       string
	accel         Accel
	sshHost       string
	sshPort       int
	consolePath   string
	bootTimeout   time.Duration
}

// validate checks opts and fills in defaults. Every error names the
// option, the value and the rule.
func (opts Options) validate() (config, error) {
	c := config{
		kernelCmdline: opts.KernelCmdline,
		seed:          opts.Seed,
		cpus:          opts.CPUs,
		memoryMiB:     opts.MemoryMiB,
		machine:       opts.Machine,
		accel:         opts.Accel,
		diskFormat:    opts.DiskFormat,
		bootTimeout:   opts.BootTimeout,
	}

	bin := opts.QEMU
	if bin == "" {
		bin = DefaultQEMU
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		return c, fmt.Errorf("option QEMU %q: not found (%v): install the Debian package qemu-system-x86", bin, err)
	}
	c.qemu = path

	if opts.Kernel == "" {
		return c, fmt.Errorf("option Kernel %q: required: the kernel to boot directly", opts.Kernel)
	}
	if c.kernel, err = readableFile("Kernel", opts.Kernel); err != nil {
		return c, err
	}
	if opts.Initrd != "" {
		if c.initrd, err = readableFile("Initrd", opts.Initrd); err != nil {
			return c, err
		}
	}
	if len(c.kernelCmdline) > MaxKernelCmdline || strings.ContainsFunc(c.kernelCmdline, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return c, fmt.Errorf("option KernelCmdline %q: must be at most %d bytes without control characters", truncate(c.kernelCmdline), MaxKernelCmdline)
	}

	if opts.Disk == "" {
		return c, fmt.Errorf("option Disk %q: required: the root disk image", opts.Disk)
	}
	if c.disk, err = readableFile("Disk", opts.Disk); err != nil {
		return c, err
	}
	if c.diskFormat == "" {
		c.diskFormat = DefaultDiskFormat
	}
	if c.diskFormat != "qcow2" && c.diskFormat != "raw" {
		return c, fmt.Errorf("option DiskFormat %q: must be qcow2 or raw", opts.DiskFormat)
	}

	if c.seed != nil {
		if err := c.seed.validate(); err != nil {
			return c, fmt.Errorf("option %w", err)
		}
	}

	if c.cpus == 0 {
		c.cpus = DefaultCPUs
	}
	if c.cpus < 1 || c.cpus > MaxCPUs {
		return c, fmt.Errorf("option CPUs %d: must be 1..%d", opts.CPUs, MaxCPUs)
	}
	if c.memoryMiB == 0 {
		c.memoryMiB = DefaultMemoryMiB
	}
	if c.memoryMiB < MinMemoryMiB || c.memoryMiB > MaxMemoryMiB {
		return c, fmt.Errorf("option MemoryMiB %d: must be %d..%d", opts.MemoryMiB, MinMemoryMiB, MaxMemoryMiB)
	}
	if c.machine == "" {
		c.machine = DefaultMachine
	}
	if !machinePattern.MatchString(c.machine) {
		return c, fmt.Errorf("option Machine %q: must be q35 or pc-q35-X.Y (the q35 family KubeVirt offers)", opts.Machine)
	}
	if c.accel == "" {
		c.accel = AccelAuto
	}
	if c.accel != AccelAuto && c.accel != AccelKVM && c.accel != AccelTCG {
		return c, fmt.Errorf("option Accel %q: must be auto, kvm or tcg", opts.Accel)
	}

	addr := opts.SSHAddr
	if addr == "" {
		addr = DefaultSSHAddr
	}
	if c.sshHost, c.sshPort, err = loopbackAddr(addr); err != nil {
		return c, fmt.Errorf("option SSHAddr %q: %w", addr, err)
	}

	if opts.ConsolePath != "" {
		dir := filepath.Dir(opts.ConsolePath)
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return c, fmt.Errorf("option ConsolePath %q: its directory must exist", opts.ConsolePath)
		}
		if c.consolePath, err = filepath.Abs(opts.ConsolePath); err != nil {
			return c, fmt.Errorf("option ConsolePath %q: %w", opts.ConsolePath, err)
		}
	}

	if c.bootTimeout == 0 {
		c.bootTimeout = DefaultBootTimeout
	}
	if c.bootTimeout < time.Second || c.bootTimeout > MaxBootTimeout {
		return c, fmt.Errorf("option BootTimeout %s: must be 1s..%s", opts.BootTimeout, MaxBootTimeout)
	}
	return c, nil
}

// readableFile checks that path names a regular file this process can open
// and returns its absolute path (absolute paths make QEMU's command line
// self-explanatory).
func readableFile(option, path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("option %s %q: %w", option, path, err)
	}
	f, err := os.Open(abs)
	if err != nil {
		return "", fmt.Errorf("option %s %q: must be a readable file: %w", option, path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("option %s %q: must be a regular file", option, path)
	}
	return abs, nil
}

// loopbackAddr parses "host:port" with an IPv4 loopback host.
func loopbackAddr(addr string) (string, int, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("must be host:port: %v", err)
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() == nil || !loopbackNetwork.Contains(ip) {
		return "", 0, fmt.Errorf("host %q must be an IPv4 loopback address (127.x.y.z)", host)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q must be 0..65535", portStr)
	}
	return ip.To4().String(), port, nil
}

// truncate shortens s for an error message.
func truncate(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
