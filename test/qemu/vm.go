//go:build linux

package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Tunables of the boot and stop sequences.
const (
	// ConsoleTailLines is how many console lines a boot error carries.
	ConsoleTailLines = 40
	// stopTimeout bounds the wait for QEMU to exit after SIGKILL.
	stopTimeout = 30 * time.Second
	// startTimeout bounds QEMU's start until its QMP monitor answers.
	startTimeout = 60 * time.Second
	// sshPollInterval is the pause between two looks for the SSH banner.
	sshPollInterval = 500 * time.Millisecond
	// bannerTimeout bounds one attempt to read the SSH banner.
	bannerTimeout = 10 * time.Second
	// consoleKeep is how much of the console Stop keeps for ConsoleTail
	// when it removes the console file.
	consoleKeep = 256 << 10
)

// VM is a running QEMU guest. Stop it on every path (BootForTest does).
type VM struct {
	cfg         config
	accel       Accel
	accelReason string
	dir         string // private runtime directory: seed, QMP socket, QEMU log
	consolePath string
	sshAddr     string

	cmd     *exec.Cmd
	logPath string        // QEMU's stdout and stderr
	done    chan struct{} // closed when cmd.Wait returned
	waitErr error         // cmd.Wait's result, set before done closes

	stopOnce     sync.Once
	stopErr      error
	mu           sync.Mutex
	stopped      bool
	finalConsole []byte // console kept by Stop before the file goes
}

// Boot starts a guest with opts and returns once its sshd sends an SSH
// banner on SSHAddr (see WaitSSH), waiting at most opts.BootTimeout. On
// failure the guest is stopped and the error ends with the console's last
// ConsoleTailLines lines. ctx bounds the whole boot; the guest runs until
// Stop.
func Boot(ctx context.Context, opts Options) (*VM, error) {
	vm, err := Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, vm.cfg.bootTimeout)
	defer cancel()
	if err := vm.WaitSSH(wctx); err != nil {
		_ = vm.Stop()
		return nil, fmt.Errorf("boot %s: %w", filepath.Base(vm.cfg.disk), err)
	}
	return vm, nil
}

// Start starts QEMU with opts and returns once the guest runs; it does not
// wait for the guest to boot (see WaitSSH). ctx bounds the start only.
func Start(ctx context.Context, opts Options) (*VM, error) {
	c, err := opts.validate()
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	accel, reason := c.accel, "requested in Options.Accel"
	if accel == AccelAuto {
		if accel, reason, err = detectAccel(ctx, c.qemu, c.kernel, KVMDevice); err != nil {
			return nil, fmt.Errorf("boot: %w", err)
		}
	}

	dir, err := os.MkdirTemp("", "qemu-vm-")
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	vm := &VM{cfg: c, accel: accel, accelReason: reason, dir: dir, consolePath: c.consolePath}
	if vm.consolePath == "" {
		vm.consolePath = filepath.Join(dir, "console.log")
	}
	fail := func(err error) (*VM, error) {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("boot: %w", err)
	}
	var seedPath string
	if c.seed != nil {
		seedPath = filepath.Join(dir, "seed.iso")
		if err := WriteSeed(ctx, seedPath, *c.seed); err != nil {
			return fail(err)
		}
	}

	// With port 0 a free port is picked and handed to QEMU; another process
	// may take it in between, so a failed forward is retried with a new one.
	for attempt := 0; ; attempt++ {
		port := c.sshPort
		if port == 0 {
			if port, err = freePort(c.sshHost); err != nil {
				return fail(err)
			}
		}
		vm.sshAddr = net.JoinHostPort(c.sshHost, strconv.Itoa(port))
		err = vm.launch(ctx, seedPath)
		if err == nil {
			return vm, nil
		}
		if c.sshPort != 0 || attempt >= 4 || !errors.Is(err, errHostForward) || ctx.Err() != nil {
			return fail(err)
		}
	}
}

var errHostForward = errors.New("could not set up the host forward")

// args returns QEMU's command line.
func (vm *VM) args(seedPath, qmpPath string) []string {
	c := vm.cfg
	a := []string{
		"-name", "gitlab-runner-kubevirt-test",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-machine", c.machine,
		"-smp", strconv.Itoa(c.cpus), "-m", strconv.Itoa(c.memoryMiB),
	}
	if vm.accel == AccelKVM {
		a = append(a, "-accel", "kvm", "-cpu", "host")
	} else {
		a = append(a, "-accel", "tcg,thread=multi", "-cpu", "max")
	}
	a = append(a, "-kernel", c.kernel)
	if c.initrd != "" {
		a = append(a, "-initrd", c.initrd)
	}
	if c.kernelCmdline != "" {
		a = append(a, "-append", c.kernelCmdline)
	}
	a = append(a,
		"-drive", "file="+escapeOpt(c.disk)+",format="+c.diskFormat+",if=none,id=root,snapshot=on",
		"-device", "virtio-blk-pci,drive=root")
	if seedPath != "" {
		a = append(a,
			"-drive", "file="+escapeOpt(seedPath)+",format=raw,if=none,id=seed,readonly=on",
			"-device", "virtio-blk-pci,drive=seed")
	}
	host, port, _ := net.SplitHostPort(vm.sshAddr)
	a = append(a,
		"-netdev", "user,id=net0,restrict=on,hostfwd=tcp:"+host+":"+port+"-:22",
		"-device", "virtio-net-pci,netdev=net0",
		"-device", "virtio-rng-pci",
		"-chardev", "file,id=console,path="+escapeOpt(vm.consolePath),
		"-serial", "chardev:console",
		"-qmp", "unix:"+escapeOpt(qmpPath)+",server=on,wait=off",
		// Start paused: the QMP greeting then proves QEMU finished its
		// set-up (the host forward included) before the guest runs.
		"-S")
	return a
}

// launch runs QEMU once and resumes the guest through QMP.
func (vm *VM) launch(ctx context.Context, seedPath string) error {
	qmpPath := filepath.Join(vm.dir, "qmp.sock")
	if len(qmpPath) > 100 { // sockaddr_un holds 108 bytes
		return fmt.Errorf("QMP socket path %s: longer than a unix socket allows: set TMPDIR to a shorter directory", qmpPath)
	}
	_ = os.Remove(qmpPath)
	vm.logPath = filepath.Join(vm.dir, "qemu.log")
	logFile, err := os.OpenFile(vm.logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("open qemu log: %w", err)
	}
	defer logFile.Close() // QEMU holds its own descriptor
	console, err := os.OpenFile(vm.consolePath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("create console file: %w", err)
	}
	_ = console.Close()

	cmd := exec.Command(vm.cfg.qemu, vm.args(seedPath, qmpPath)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = qemuEnv()
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", vm.cfg.qemu, err)
	}
	vm.cmd = cmd
	vm.done = make(chan struct{})
	go func() {
		vm.waitErr = cmd.Wait()
		close(vm.done)
	}()

	sctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := vm.resume(sctx, qmpPath); err != nil {
		killGroup(cmd.Process.Pid)
		<-vm.done
		log := vm.qemuLog()
		if strings.Contains(log, "host forwarding rule") {
			return fmt.Errorf("%w %s: %s", errHostForward, vm.sshAddr, log)
		}
		return fmt.Errorf("start qemu: %w; qemu said: %s", err, log)
	}
	return nil
}

// resume waits for QEMU's QMP greeting, then starts the guest's CPUs.
func (vm *VM) resume(ctx context.Context, qmpPath string) error {
	var conn net.Conn
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for conn == nil {
		c, err := net.Dial("unix", qmpPath)
		if err == nil {
			conn = c
			break
		}
		select {
		case <-vm.done:
			return fmt.Errorf("qemu exited (%s)", vm.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("no QMP socket at %s: %w", qmpPath, ctx.Err())
		case <-tick.C:
		}
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	go func() {
		// QEMU's exit closes the socket, but make sure a read never outlives it.
		select {
		case <-vm.done:
			_ = conn.SetDeadline(time.Now())
		case <-ctx.Done():
		}
	}()

	dec := json.NewDecoder(bufio.NewReader(conn))
	var greeting map[string]json.RawMessage
	if err := dec.Decode(&greeting); err != nil {
		return fmt.Errorf("read QMP greeting: %w", err)
	}
	if _, ok := greeting["QMP"]; !ok {
		return fmt.Errorf("unexpected QMP greeting")
	}
	for _, command := range []string{"qmp_capabilities", "cont"} {
		if err := qmpExecute(conn, dec, command); err != nil {
			return err
		}
	}
	return nil
}

// qmpExecute runs one QMP command without arguments and waits for its
// answer, skipping asynchronous events.
func qmpExecute(w io.Writer, dec *json.Decoder, command string) error {
	if _, err := fmt.Fprintf(w, "{\"execute\":%q}\n", command); err != nil {
		return fmt.Errorf("QMP %s: %w", command, err)
	}
	for {
		var msg struct {
			Event  string          `json:"event"`
			Return json.RawMessage `json:"return"`
			Error  *struct {
				Class string `json:"class"`
				Desc  string `json:"desc"`
			} `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			return fmt.Errorf("QMP %s: %w", command, err)
		}
		switch {
		case msg.Error != nil:
			return fmt.Errorf("QMP %s: %s: %s", command, msg.Error.Class, msg.Error.Desc)
		case msg.Return != nil:
			return nil
		}
	}
}

// WaitSSH waits until a TCP connection to SSHAddr gets an SSH banner
// ("SSH-2.0-...") from the guest, or until ctx ends or QEMU exits. QEMU's
// forward accepts connections before the guest listens and closes them
// again, so only the banner proves sshd is up. Errors carry the console's
// last ConsoleTailLines lines.
func (vm *VM) WaitSSH(ctx context.Context) error {
	start := time.Now()
	for {
		last := readBanner(ctx, vm.sshAddr)
		if last == nil {
			return nil
		}
		select {
		case <-vm.done:
			return fmt.Errorf("qemu exited (%s) before sshd answered on %s; qemu said: %s%s",
				vm.cmd.ProcessState, vm.sshAddr, vm.qemuLog(), vm.consoleSection())
		case <-ctx.Done():
			return fmt.Errorf("no SSH banner on %s after %s (%w; last attempt: %v)%s",
				vm.sshAddr, time.Since(start).Round(time.Second), ctx.Err(), last, vm.consoleSection())
		case <-time.After(sshPollInterval):
		}
	}
}

// readBanner connects to addr and checks that the first line the server
// sends is an SSH banner.
func readBanner(ctx context.Context, addr string) error {
	d := net.Dialer{Timeout: bannerTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(bannerTimeout))
	// QEMU's forward accepts at once and then waits for the guest, which
	// may never answer: cancelling ctx must end the read too.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	line, err := bufio.NewReaderSize(conn, 256).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read SSH banner: %w", err)
	}
	if !strings.HasPrefix(line, "SSH-") {
		return fmt.Errorf("not an SSH banner: %q", truncate(strings.TrimSpace(line)))
	}
	return nil
}

// consoleSection formats the console tail for an error message.
func (vm *VM) consoleSection() string {
	return fmt.Sprintf("\nconsole (%s), last %d lines:\n%s", vm.consolePath, ConsoleTailLines, vm.ConsoleTail(ConsoleTailLines))
}

// SSHAddr returns the host end of the forward to the guest's port 22,
// "127.x.y.z:port".
func (vm *VM) SSHAddr() string { return vm.sshAddr }

// Accel returns the accelerator the guest runs with, and why it was chosen.
func (vm *VM) Accel() (Accel, string) { return vm.accel, vm.accelReason }

// ConsolePath returns the file the guest's serial console is written to.
// Unless Options.ConsolePath was set, Stop removes it (ConsoleTail keeps
// working).
func (vm *VM) ConsolePath() string { return vm.consolePath }

// Pid returns QEMU's process id.
func (vm *VM) Pid() int { return vm.cmd.Process.Pid }

// Wait waits until QEMU exits. It returns nil when QEMU exited with status
// 0 or was killed by Stop, else an error with QEMU's last output.
func (vm *VM) Wait() error {
	<-vm.done
	vm.mu.Lock()
	stopped := vm.stopped
	vm.mu.Unlock()
	if vm.waitErr == nil || stopped {
		return nil
	}
	return fmt.Errorf("qemu (pid %d): %w; qemu said: %s", vm.Pid(), vm.waitErr, vm.qemuLog())
}

// Stop kills QEMU, reaps it, and removes the seed (it holds the guest's
// secrets), the QMP socket and, unless Options.ConsolePath named it, the
// console file. It is safe to call more than once and from several
// goroutines; every call returns the first call's result.
func (vm *VM) Stop() error {
	vm.stopOnce.Do(func() {
		vm.mu.Lock()
		vm.stopped = true
		vm.mu.Unlock()
		var errs []error
		killGroup(vm.Pid())
		select {
		case <-vm.done:
		case <-time.After(stopTimeout):
			errs = append(errs, fmt.Errorf("stop qemu: pid %d did not exit %s after SIGKILL", vm.Pid(), stopTimeout))
		}
		final := readTailBytes(vm.consolePath, consoleKeep)
		vm.mu.Lock()
		vm.finalConsole = final
		vm.mu.Unlock()
		if err := os.RemoveAll(vm.dir); err != nil {
			errs = append(errs, fmt.Errorf("stop qemu: remove %s: %w", vm.dir, err))
		}
		vm.stopErr = errors.Join(errs...)
	})
	return vm.stopErr
}

// ConsoleTail returns the last n lines of the serial console, with
// terminal escape sequences and carriage returns removed. After Stop it
// returns lines kept by Stop.
func (vm *VM) ConsoleTail(n int) string {
	vm.mu.Lock()
	stopped, final := vm.stopped && vm.finalConsole != nil, vm.finalConsole
	vm.mu.Unlock()
	data := final
	if !stopped {
		data = readTailBytes(vm.consolePath, consoleKeep)
	}
	return tailLines(cleanConsole(data), n)
}

// qemuLog returns QEMU's own output (its stderr), trimmed.
func (vm *VM) qemuLog() string {
	out := strings.TrimSpace(string(readTailBytes(vm.logPath, 16<<10)))
	if out == "" {
		return "(nothing)"
	}
	return out
}

// readTailBytes returns at most max bytes from the end of the file at path.
func readTailBytes(path string, max int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return []byte(fmt.Sprintf("(cannot read %s: %v)", path, err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return []byte(fmt.Sprintf("(cannot read %s: %v)", path, err))
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return []byte(fmt.Sprintf("(cannot read %s: %v)", path, err))
	}
	return data
}

// ansiEscape matches terminal control sequences (CSI and OSC) as systemd
// and the kernel print them on a serial console.
var ansiEscape = regexp.MustCompile(`\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])`)

// cleanConsole removes escape sequences, carriage returns and other
// control characters except newlines and tabs.
func cleanConsole(b []byte) string {
	s := ansiEscape.ReplaceAllString(string(b), "")
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' || (r >= 0x20 && r != 0x7f) {
			return r
		}
		return -1
	}, s)
}

// tailLines returns the last n lines of s (without a trailing empty line).
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if n >= 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// escapeOpt escapes a value for QEMU's key=value option syntax, where a
// comma separates options and ",," is a literal comma.
func escapeOpt(v string) string { return strings.ReplaceAll(v, ",", ",,") }

// qemuEnv is QEMU's environment: only what it needs, never the test
// process's variables (which may hold CI secrets). TMPDIR decides where
// snapshot=on keeps its temporary overlay.
func qemuEnv() []string {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
	if t := os.Getenv("TMPDIR"); t != "" {
		env = append(env, "TMPDIR="+t)
	}
	return env
}

// freePort asks the kernel for a free TCP port on host.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
