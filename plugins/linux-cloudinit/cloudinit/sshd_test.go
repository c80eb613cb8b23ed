package cloudinit_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil/osutiltest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/linux-cloudinit/cloudinit"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// TestRunCommandOverOpenSSH runs RunCommand through a real OpenSSH sshd,
// the way the transport does: sshd starts the user's login shell with -c
// and delivers a signal request with killpg to that shell's process group,
// which the script (setsid) is not in. The exit code or signal must come
// back as the SSH exit status, and a signal must take the script's whole
// tree down. The user is a throwaway non-root account, as in the guest:
// OpenSSH before 9.8 refuses to signal root sessions ("session signalling
// requires privilege separation").
func TestRunCommandOverOpenSSH(t *testing.T) {
	defaultSignals(t)
	account := sshd.CreateUserForTest(t)
	key, err := sshd.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	srv := sshd.StartForTest(t, sshd.Options{User: account.Name, AuthorizedKeys: []string{key.AuthorizedKey}})
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(srv.HostPublicKey()))
	if err != nil {
		t.Fatal(err)
	}
	// The account must read the scripts: t.TempDir's parent is 0700.
	dir, err := os.MkdirTemp("", "cloudinit-sshd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := func(t *testing.T, body string) string {
		f, err := os.CreateTemp(dir, "job-*.sh")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(body); err != nil {
			t.Fatal(err)
		}
		if err := f.Chmod(0o755); err != nil {
			t.Fatal(err)
		}
		return f.Name()
	}

	// The throwaway account starts with /bin/sh; the guest's user has
	// /bin/bash (LoginShell). Both must work.
	for _, shell := range []string{"/bin/sh", cloudinit.LoginShell} {
		t.Run(shell, func(t *testing.T) {
			usermod := osutiltest.RequireTool(t, "usermod", "passwd")
			if out, err := exec.Command(usermod, "--shell", shell, account.Name).CombinedOutput(); err != nil {
				t.Fatalf("usermod --shell %s: %v\n%s", shell, err, out)
			}
			client, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
				User:            account.Name,
				Auth:            []ssh.AuthMethod{ssh.PublicKeys(key.Signer)},
				HostKeyCallback: ssh.FixedHostKey(hostKey),
				Timeout:         hangGuard,
			})
			if err != nil {
				t.Fatalf("dial %s: %v", srv.Addr(), err)
			}
			defer client.Close()
			runOverSSH(t, client, script)
		})
	}

	// The control: sshd's killpg reaches a plain `bash script` and the
	// children in its process group, but background commands of a script
	// ignore INT, so they outlive it. RunCommand's TERM after INT is needed.
	t.Run("control: plain bash script leaks on INT", func(t *testing.T) {
		client, err := ssh.Dial("tcp", srv.Addr(), &ssh.ClientConfig{
			User:            account.Name,
			Auth:            []ssh.AuthMethod{ssh.PublicKeys(key.Signer)},
			HostKeyCallback: ssh.FixedHostKey(hostKey),
			Timeout:         hangGuard,
		})
		if err != nil {
			t.Fatalf("dial %s: %v", srv.Addr(), err)
		}
		defer client.Close()
		tr := newTree(t)
		tr.killLeftovers(t)
		sess, err := client.NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		var stdout plugintest.SyncBuffer
		sess.Stdout = &stdout
		if err := sess.Start("bash " + script(t, tr.script())); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the script's whole tree to start", func() bool {
			return len(tr.alive(t)) == len(tr.args) && strings.Contains(stdout.String(), "started")
		})
		if err := sess.Signal(ssh.SIGINT); err != nil {
			t.Fatal(err)
		}
		// The foreground sleep dies of INT; the background ones live on.
		foreground := tr.args[len(tr.args)-1]
		waitFor(t, "the script's foreground command to die of INT", func() bool {
			_, ok := tr.alive(t)[foreground]
			return !ok
		})
		left := tr.alive(t)
		if len(left) == 0 {
			t.Fatal("INT over SSH took a plain script's whole tree down; the signal tests could not tell RunCommand's handling apart")
		}
		// The survivors hold the session's stdout open: end them so the
		// session can close.
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		done := make(chan error, 1)
		go func() { done <- sess.Wait() }()
		select {
		case <-done:
		case <-time.After(hangGuard):
			t.Fatalf("the session did not end within %s", hangGuard)
		}
	})
}

// runOverSSH checks exit codes and signals through client.
func runOverSSH(t *testing.T, client *ssh.Client, script func(*testing.T, string) string) {
	t.Run("exit code", func(t *testing.T) {
		for _, code := range []int{0, 3, 255} {
			sess, err := client.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			err = sess.Run(commandFor(script(t, fmt.Sprintf("exit %d\n", code))))
			sess.Close()
			got := 0
			var exitErr *ssh.ExitError
			if errors.As(err, &exitErr) {
				got = exitErr.ExitStatus()
			} else if err != nil {
				t.Fatalf("run: %v", err)
			}
			if got != code {
				t.Errorf("exit status %d, want %d", got, code)
			}
		}
	})

	for _, sig := range []ssh.Signal{ssh.SIGTERM, ssh.SIGINT, ssh.SIGHUP} {
		t.Run("signal "+string(sig), func(t *testing.T) {
			tr := newTree(t)
			tr.killLeftovers(t)
			sess, err := client.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer sess.Close()
			var stdout plugintest.SyncBuffer
			sess.Stdout = &stdout
			if err := sess.Start(commandFor(script(t, tr.script()))); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the script's whole tree to start", func() bool {
				return len(tr.alive(t)) == len(tr.args) && strings.Contains(stdout.String(), "started")
			})
			if err := sess.Signal(sig); err != nil {
				t.Fatalf("signal %s: %v", sig, err)
			}
			done := make(chan error, 1)
			go func() { done <- sess.Wait() }()
			select {
			case err = <-done:
			case <-time.After(hangGuard):
				t.Fatalf("the session did not end within %s of %s (see the sshd log)", hangGuard, sig)
			}
			var exitErr *ssh.ExitError
			if !errors.As(err, &exitErr) || exitErr.Signal() != string(sig) {
				t.Errorf("session ended with %v, want exit-signal %s", err, sig)
			}
			waitFor(t, "every process of the script to be gone", func() bool { return len(tr.alive(t)) == 0 })
		})
	}
}
