//go:build linux

package sshd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
)

// User is a throwaway system account with a random password, for password
// authentication tests. Remove it when done.
type User struct {
	// Name is the login name, "sshdtest" plus random hex.
	Name string
	// Password is the account's random password. Never log it.
	Password string
	// UID and GID are the account's numeric user and group ids, for
	// chown of files the account must own.
	UID, GID int
}

// CreateUser creates a throwaway account with a home directory, /bin/sh as
// shell and a random password. It needs root (useradd and chpasswd from
// Debian package passwd); as any other user it fails with an error saying
// so. The password travels to chpasswd on stdin, never in argv.
func CreateUser(ctx context.Context) (*User, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("create throwaway user: password tests need root (they run useradd and chpasswd), running as uid %d", os.Geteuid())
	}
	for _, tool := range []string{"useradd", "chpasswd", "userdel"} {
		if _, err := lookSbin(tool); err != nil {
			return nil, fmt.Errorf("create throwaway user: %w: install Debian package passwd", err)
		}
	}
	suffix := make([]byte, 4)
	secret := make([]byte, 18)
	if _, err := rand.Read(suffix); err != nil {
		return nil, fmt.Errorf("create throwaway user: %w", err)
	}
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("create throwaway user: %w", err)
	}
	u := &User{
		Name:     "sshdtest" + hex.EncodeToString(suffix),
		Password: base64.RawURLEncoding.EncodeToString(secret),
	}
	if err := runSbin(ctx, nil, "useradd", "--create-home", "--shell", "/bin/sh", "--comment", "test/sshd throwaway user", u.Name); err != nil {
		return nil, fmt.Errorf("create throwaway user %s: %w", u.Name, err)
	}
	if err := runSbin(ctx, strings.NewReader(u.Name+":"+u.Password+"\n"), "chpasswd"); err != nil {
		_ = u.Remove(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("set the password of throwaway user %s: %w", u.Name, err)
	}
	if err := u.lookupIDs(); err != nil {
		_ = u.Remove(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("create throwaway user %s: %w", u.Name, err)
	}
	return u, nil
}

// lookupIDs fills in UID and GID from the account database.
func (u *User) lookupIDs() error {
	lu, err := user.Lookup(u.Name)
	if err != nil {
		return err
	}
	if u.UID, err = strconv.Atoi(lu.Uid); err != nil {
		return fmt.Errorf("uid %q: %w", lu.Uid, err)
	}
	if u.GID, err = strconv.Atoi(lu.Gid); err != nil {
		return fmt.Errorf("gid %q: %w", lu.Gid, err)
	}
	return nil
}

// Remove deletes the account and its home directory, even if one of its
// processes is still running.
func (u *User) Remove(ctx context.Context) error {
	if err := runSbin(ctx, nil, "userdel", "--force", "--remove", u.Name); err != nil {
		return fmt.Errorf("remove throwaway user %s: %w", u.Name, err)
	}
	return nil
}

func lookSbin(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		p := dir + "/" + name
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH, /usr/sbin or /sbin", name)
}

// runSbin runs an account tool; its output (never the password: that only
// goes to stdin) is part of the error.
func runSbin(ctx context.Context, stdin *strings.Reader, name string, args ...string) error {
	p, err := lookSbin(name)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, p, args...)
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}
