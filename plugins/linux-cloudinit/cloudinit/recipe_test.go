package cloudinit_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/linux-cloudinit/cloudinit"
)

// hangGuard bounds every wait in these tests so a broken command fails the
// test instead of hanging it. It is never asserted on.
const hangGuard = 30 * time.Second

// shells are the login shells RunCommand must work in: the user-data sets
// /bin/bash; /bin/sh (dash on Debian) covers images where it is not bash.
var shells = []string{"/bin/bash", "/bin/sh"}

// commandFor returns RunCommand for the script at path.
func commandFor(path string) string {
	return strings.ReplaceAll(cloudinit.RunCommand, "{script}", path)
}

// writeScript writes a job script into a fresh directory.
func writeScript(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job.sh")
	if err := os.WriteFile(path, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

// output is a file a command writes one stream to. A file, not a pipe:
// Wait must not wait for processes a broken command leaves behind.
type output struct {
	t    *testing.T
	file *os.File
}

func newOutput(t *testing.T, name string) *output {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &output{t: t, file: f}
}

// String returns what was written so far.
func (o *output) String() string {
	b, err := os.ReadFile(o.file.Name())
	if err != nil {
		o.t.Fatal(err)
	}
	return string(b)
}

// startShell runs `shell -c command` the way sshd runs a session command.
func startShell(t *testing.T, shell, command string) (*exec.Cmd, *output, *output) {
	t.Helper()
	for _, tool := range []struct{ name, pkg string }{{"bash", "bash"}, {"setsid", "util-linux"}, {"sleep", "coreutils"}, {"nohup", "coreutils"}} {
		if _, err := exec.LookPath(tool.name); err != nil {
			t.Fatalf("%s is not on PATH: install the Debian package %s", tool.name, tool.pkg)
		}
	}
	cmd := exec.Command(shell, "-c", command)
	stdout, stderr := newOutput(t, "stdout"), newOutput(t, "stderr")
	cmd.Stdout, cmd.Stderr = stdout.file, stderr.file
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", shell, err)
	}
	return cmd, stdout, stderr
}

// waitExit waits for cmd and returns its wait status.
func waitExit(t *testing.T, cmd *exec.Cmd) syscall.WaitStatus {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			t.Fatalf("wait: %v", err)
		}
		return cmd.ProcessState.Sys().(syscall.WaitStatus)
	case <-time.After(hangGuard):
		_ = cmd.Process.Kill()
		t.Fatalf("the command did not exit within %s", hangGuard)
	}
	return 0
}

func TestRunCommandExitCode(t *testing.T) {
	for _, shell := range shells {
		for _, code := range []int{0, 1, 3, 127, 255} {
			t.Run(fmt.Sprintf("%s/exit %d", shell, code), func(t *testing.T) {
				t.Parallel()
				script := writeScript(t, fmt.Sprintf("echo to-stdout\necho to-stderr >&2\nexit %d\n", code))
				cmd, stdout, stderr := startShell(t, shell, commandFor(script))
				ws := waitExit(t, cmd)
				if ws.Signaled() || ws.ExitStatus() != code {
					t.Errorf("exit status %v (signaled %v), want exit code %d", ws.ExitStatus(), ws.Signaled(), code)
				}
				if got := stdout.String(); got != "to-stdout\n" {
					t.Errorf("stdout = %q, want %q", got, "to-stdout\n")
				}
				if got := stderr.String(); got != "to-stderr\n" {
					t.Errorf("stderr = %q, want %q", got, "to-stderr\n")
				}
			})
		}
	}
}

func TestRunCommandStreamsStaySeparateAndOrdered(t *testing.T) {
	const lines = 2000
	var body strings.Builder
	for i := range lines {
		fmt.Fprintf(&body, "echo out-%d\necho err-%d >&2\n", i, i)
	}
	for _, shell := range shells {
		t.Run(shell, func(t *testing.T) {
			t.Parallel()
			cmd, stdout, stderr := startShell(t, shell, commandFor(writeScript(t, body.String())))
			if ws := waitExit(t, cmd); ws.ExitStatus() != 0 {
				t.Fatalf("exit status %d, stderr tail %q", ws.ExitStatus(), tail(stderr.String()))
			}
			for _, s := range []struct {
				name, prefix, got string
			}{{"stdout", "out-", stdout.String()}, {"stderr", "err-", stderr.String()}} {
				got := strings.Split(strings.TrimSuffix(s.got, "\n"), "\n")
				if len(got) != lines {
					t.Fatalf("%s has %d lines, want %d", s.name, len(got), lines)
				}
				for i, line := range got {
					if want := s.prefix + strconv.Itoa(i); line != want {
						t.Fatalf("%s line %d = %q, want %q: order lost or streams mixed", s.name, i, line, want)
					}
				}
			}
		})
	}
}

// tree is a job script that starts a process tree: background children, a
// subshell with its own children, a nohup'd child (ignores HUP) and a
// foreground child. Every process is a sleep with a unique argument.
type tree struct {
	args []string // one per sleep, unique to this test run
}

func newTree(t *testing.T) tree {
	t.Helper()
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000_000))
	if err != nil {
		t.Fatal(err)
	}
	base := 1_000_000_000 + n.Int64()*10
	tr := tree{}
	for i := range 5 {
		tr.args = append(tr.args, strconv.FormatInt(base+int64(i), 10))
	}
	return tr
}

func (tr tree) script() string {
	a := tr.args
	return fmt.Sprintf(`sleep %s &
( sleep %s & sleep %s & wait ) &
nohup sleep %s >/dev/null 2>&1 &
echo started
sleep %s
echo not-reached
`, a[0], a[1], a[2], a[3], a[4])
}

// alive returns the pids of this tree's sleeps that are still running (a
// zombie has exited: it is not counted).
func (tr tree) alive(t *testing.T) map[string]int {
	t.Helper()
	found := map[string]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("these tests read /proc (Linux): %v", err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		argv := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
		if len(argv) != 2 || filepath.Base(argv[0]) != "sleep" {
			continue
		}
		for _, a := range tr.args {
			if argv[1] == a && !zombie(pid) {
				found[a] = pid
			}
		}
	}
	return found
}

// zombie reports whether pid has exited and waits for its parent.
func zombie(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true // gone
	}
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// waitFor polls cond until it holds, failing after hangGuard.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting (%s) for %s", hangGuard, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killLeftovers kills what a failed test left running, by pid.
func (tr tree) killLeftovers(t *testing.T) {
	t.Cleanup(func() {
		for _, pid := range tr.alive(t) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
}

// defaultSignals makes sure the shells the test starts see INT and HUP with
// their default action: a process started in the background by a shell
// without job control inherits them ignored, and a shell cannot trap a
// signal that was ignored when it started. sshd gives its sessions the
// default action, so that is what the test must reproduce.
func defaultSignals(t *testing.T) {
	var ignored []os.Signal
	for _, s := range []os.Signal{syscall.SIGINT, syscall.SIGHUP} {
		if signal.Ignored(s) {
			ignored = append(ignored, s)
		}
	}
	if len(ignored) == 0 {
		return
	}
	// A Go handler is reset to the default action in exec'd children.
	c := make(chan os.Signal, 1)
	signal.Notify(c, ignored...)
	t.Cleanup(func() { signal.Stop(c) })
}

func TestRunCommandSignalKillsTheWholeTree(t *testing.T) {
	defaultSignals(t)
	for _, shell := range shells {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
			t.Run(fmt.Sprintf("%s/%s", shell, signalName(sig)), func(t *testing.T) {
				t.Parallel()
				tr := newTree(t)
				tr.killLeftovers(t)
				cmd, stdout, stderr := startShell(t, shell, commandFor(writeScript(t, tr.script())))
				waitFor(t, "the script's whole tree to start", func() bool {
					return len(tr.alive(t)) == len(tr.args) && strings.Contains(stdout.String(), "started")
				})
				// sshd signals only its direct child: the login shell.
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				ws := waitExit(t, cmd)
				if !ws.Signaled() || ws.Signal() != sig {
					t.Errorf("the shell exited with status %d (signaled %v, signal %v); want it ended by %s so the exit reports the signal", ws.ExitStatus(), ws.Signaled(), ws.Signal(), signalName(sig))
				}
				waitFor(t, "every process of the script to be gone", func() bool { return len(tr.alive(t)) == 0 })
				if strings.Contains(stdout.String(), "not-reached") {
					t.Error("the script went on after the signal")
				}
				if got := stderr.String(); strings.Contains(got, "kill:") {
					t.Errorf("stderr shows kill errors: %q", got)
				}
			})
		}
	}
}

// TestRunCommandSecondSignalKills: a script that traps TERM survives the
// forwarded TERM; a second signal kills its whole group.
func TestRunCommandSecondSignalKills(t *testing.T) {
	for _, shell := range shells {
		t.Run(shell, func(t *testing.T) {
			t.Parallel()
			tr := newTree(t)
			tr.killLeftovers(t)
			script := fmt.Sprintf("trap 'echo caught >&2' TERM\necho started\nwhile :; do sleep %s; done\n", tr.args[0])
			cmd, stdout, stderr := startShell(t, shell, commandFor(writeScript(t, script)))
			waitFor(t, "the script to start", func() bool {
				return len(tr.alive(t)) == 1 && strings.Contains(stdout.String(), "started")
			})
			first := tr.alive(t)[tr.args[0]]
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			// The script catches TERM and starts a new sleep: the group
			// lives on, and so does the shell waiting for it.
			waitFor(t, "the script to catch TERM and carry on", func() bool {
				pid, ok := tr.alive(t)[tr.args[0]]
				return strings.Contains(stderr.String(), "caught") && ok && pid != first
			})
			if cmd.ProcessState != nil {
				t.Fatal("the shell exited while the script still ran")
			}
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			ws := waitExit(t, cmd)
			if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
				t.Errorf("the shell exited with status %d (signaled %v); want it ended by TERM", ws.ExitStatus(), ws.Signaled())
			}
			waitFor(t, "every process of the script to be gone", func() bool { return len(tr.alive(t)) == 0 })
		})
	}
}

// TestNaiveCommandLeaksTheTree is the control: without RunCommand's
// process group and traps, signalling the shell leaves the script's
// processes running, which is what the tree test detects.
func TestNaiveCommandLeaksTheTree(t *testing.T) {
	tr := newTree(t)
	tr.killLeftovers(t)
	cmd, stdout, _ := startShell(t, "/bin/bash", "bash "+writeScript(t, tr.script()))
	waitFor(t, "the script's whole tree to start", func() bool {
		return len(tr.alive(t)) == len(tr.args) && strings.Contains(stdout.String(), "started")
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitExit(t, cmd)
	if left := tr.alive(t); len(left) == 0 {
		t.Fatal("a plain `bash script` took its children down with it; the tree test could not tell RunCommand's handling apart")
	}
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGTERM:
		return "TERM"
	case syscall.SIGINT:
		return "INT"
	case syscall.SIGHUP:
		return "HUP"
	}
	return s.String()
}

func tail(s string) string {
	if len(s) > 400 {
		return s[len(s)-400:]
	}
	return s
}

// TestReadinessCommandExitCodes runs ReadinessCommand against a stand-in
// cloud-init that exits with the codes `cloud-init status --wait`
// documents: 0 done, 1 error, 2 done with recoverable errors (23.4+). It
// tests the command's own mapping; the real cloud-init cannot finish a boot
// here.
func TestReadinessCommandExitCodes(t *testing.T) {
	for _, tc := range []struct {
		status, want int
		long         bool
	}{
		{status: 0, want: 0},
		{status: 2, want: 0},
		{status: 1, want: 1, long: true},
		{status: 3, want: 3, long: true},
	} {
		for _, shell := range shells {
			t.Run(fmt.Sprintf("%s/status %d", shell, tc.status), func(t *testing.T) {
				t.Parallel()
				bin := t.TempDir()
				stub := fmt.Sprintf("#!/bin/sh\ncase \"$*\" in\n\"status --wait\") echo ...; exit %d ;;\n\"status --long\") echo 'status: error (long)'; exit %d ;;\nesac\necho \"unexpected arguments: $*\" >&2\nexit 99\n", tc.status, tc.status)
				if err := os.WriteFile(filepath.Join(bin, "cloud-init"), []byte(stub), 0o755); err != nil {
					t.Fatal(err)
				}
				cmd, stdout, stderr := startShell(t, shell, "PATH="+bin+":$PATH\n"+cloudinit.ReadinessCommand)
				ws := waitExit(t, cmd)
				if ws.ExitStatus() != tc.want {
					t.Errorf("exit status %d, want %d (stderr %q)", ws.ExitStatus(), tc.want, stderr.String())
				}
				if got := stdout.String(); got != "" {
					t.Errorf("stdout = %q, want nothing (the progress dots are dropped)", got)
				}
				if has := strings.Contains(stderr.String(), "status: error (long)"); has != tc.long {
					t.Errorf("stderr %q: long status shown %v, want %v", stderr.String(), has, tc.long)
				}
			})
		}
	}
}
