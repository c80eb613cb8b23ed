package standin

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Account is a throwaway host account that plays the guest's login user in
// sshd mode: prepare runs with --ssh-user set to its name, the rendered
// cloud-config names it, and the stand-in's sshd logs it in. (The Linux OS
// plugin refuses "root", so tests running as root cannot use the current
// user.)
//
// Its home holds what a booted guest would offer that this host does not:
// a `cloud-init` that reports first boot as done (the stand-in applied the
// first-boot data itself; the host's own cloud-init never ran and
// `cloud-init status --wait` would wait forever). It is first in PATH
// through ~/.bashrc, which Debian's bash reads for commands run by sshd.
// Every other cloud-init subcommand runs the real cloud-init.
type Account struct {
	// Name is the login name, "standin" plus random hex.
	Name string
	// Home is the account's home directory.
	Home string
}

// cloudInitShim answers `cloud-init status` like a guest whose first boot
// finished, and hands everything else to the real cloud-init.
const cloudInitShim = `#!/bin/sh
# Written by the VMI stand-in (test/standin): this account plays a guest
# whose first boot the stand-in applied; report cloud-init as done.
if [ "$1" = status ]; then
  long=
  for a in "$@"; do [ "$a" = --long ] && long=1; done
  echo "status: done"
  if [ -n "$long" ]; then
    echo "extended_status: done"
    echo "boot_status_code: enabled-by-standin"
    echo "detail:"
    echo "DataSourceNoCloud [seed=vmi-standin]"
    echo "errors: []"
  fi
  exit 0
fi
exec /usr/bin/cloud-init "$@"
`

// bashrc puts the account's tools first in PATH for every bash, including
// the non-interactive ones sshd starts for commands.
const bashrc = `# Written by the VMI stand-in (test/standin).
export PATH="$HOME/.standin/bin:$PATH"
`

// CreateAccount creates a throwaway account with a home directory, bash as
// its login shell and no usable password (key login only). It needs root
// and useradd (Debian package passwd); otherwise it fails saying so.
// Remove it with [Account.Remove].
func CreateAccount(ctx context.Context) (*Account, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("create the stand-in's guest account: needs root (useradd), running as uid %d", os.Geteuid())
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return nil, fmt.Errorf("create the stand-in's guest account: %w", err)
	}
	name := "standin" + hex.EncodeToString(suffix)
	// "*" is no password at all; "!" would lock the account, and sshd
	// refuses key logins of locked accounts.
	if err := runSbin(ctx, "useradd", "--create-home", "--shell", "/bin/bash", "--password", "*",
		"--comment", "VMI stand-in guest user", name); err != nil {
		return nil, fmt.Errorf("create the stand-in's guest account %s: %w", name, err)
	}
	a := &Account{Name: name}
	if err := a.setup(); err != nil {
		_ = a.Remove(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("create the stand-in's guest account %s: %w", name, err)
	}
	return a, nil
}

// setup writes the account's shell setup and tools, owned by it.
func (a *Account) setup() error {
	u, err := user.Lookup(a.Name)
	if err != nil {
		return err
	}
	a.Home = u.HomeDir
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	bin := filepath.Join(a.Home, ".standin", "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return err
	}
	files := []struct {
		path string
		data string
		mode os.FileMode
	}{
		{filepath.Join(a.Home, ".bashrc"), bashrc, 0o644},
		{filepath.Join(bin, "cloud-init"), cloudInitShim, 0o755},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, []byte(f.data), f.mode); err != nil {
			return err
		}
	}
	for _, p := range []string{filepath.Join(a.Home, ".standin"), bin, files[0].path, files[1].path} {
		if err := os.Lchown(p, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// Remove ends the account's processes, deletes its files in the shared
// temporary directories, then the account and its home directory.
func (a *Account) Remove(ctx context.Context) error {
	resetErr := a.Reset()
	if err := runSbin(ctx, "userdel", "--force", "--remove", a.Name); err != nil {
		return errors.Join(resetErr, fmt.Errorf("remove the stand-in's guest account %s: %w", a.Name, err))
	}
	return resetErr
}

// sharedTempDirs are the directories every "guest" of this host shares;
// a real VM has its own.
var sharedTempDirs = []string{"/tmp", "/var/tmp", "/dev/shm"}

// keepInHome are the home entries Reset keeps: the account's setup.
var keepInHome = map[string]bool{".bashrc": true, ".standin": true, ".profile": true, ".bash_logout": true}

// Reset makes the account look like the login of a freshly booted VM:
// every process of the account is killed, its home is emptied except for
// its shell setup, and its entries in /tmp, /var/tmp and /dev/shm are
// deleted. The stand-in calls it when the last guest logged in as the
// account powers off (see [Options.Accounts]).
func (a *Account) Reset() error {
	u, err := user.Lookup(a.Name)
	if err != nil {
		return fmt.Errorf("reset the stand-in's guest account %s: %w", a.Name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil || uid == 0 {
		return fmt.Errorf("reset the stand-in's guest account %s: uid %q is not a throwaway account's", a.Name, u.Uid)
	}
	var errs []error
	if err := killMatching(func(pid int) bool { return procUID(pid) == uid }); err != nil {
		errs = append(errs, fmt.Errorf("kill the processes of %s: %w", a.Name, err))
	}
	entries, err := os.ReadDir(a.Home)
	if err != nil && !os.IsNotExist(err) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if !keepInHome[e.Name()] {
			if err := os.RemoveAll(filepath.Join(a.Home, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, dir := range sharedTempDirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range entries {
			p := filepath.Join(dir, e.Name())
			var st unix.Stat_t
			if unix.Lstat(p, &st) == nil && int(st.Uid) == uid {
				if err := os.RemoveAll(p); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("reset the stand-in's guest account %s: %w", a.Name, err)
	}
	return nil
}

// runSbin runs an account tool from PATH, /usr/sbin or /sbin; its output
// is part of the error.
func runSbin(ctx context.Context, name string, args ...string) error {
	path, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if fi, serr := os.Stat(filepath.Join(dir, name)); serr == nil && fi.Mode()&0o111 != 0 {
				path, err = filepath.Join(dir, name), nil
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin: install Debian package passwd", name)
	}
	cmd := exec.CommandContext(ctx, path, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
