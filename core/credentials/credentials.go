// Package credentials generates the per-job secrets: an ed25519 client key
// the executor logs in with, an ed25519 host key the guest serves (so the
// transport pins it instead of trusting the first key it sees), and, only
// for guests that need one, a random password.
//
// All randomness comes from crypto/rand. The types redact themselves when
// formatted, so a stray log line or %v never prints key material.
package credentials

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// PasswordLength is the length of generated passwords when the OS plugin
// sets no lower limit.
const PasswordLength = pluginapi.DefaultPasswordLength

// MinPasswordLength is the shortest password Generate makes: 16 characters
// of a 63-character alphabet are about 95 bits of entropy.
const MinPasswordLength = 16

// KeyPair is an SSH key pair.
type KeyPair struct {
	// PrivatePEM is the private key in OpenSSH PEM format
	// ("-----BEGIN OPENSSH PRIVATE KEY-----").
	PrivatePEM []byte
	// Public is the public key in authorized_keys format
	// ("ssh-ed25519 AAAA..."), without a trailing newline.
	Public string
}

// Type returns the key's algorithm, e.g. "ssh-ed25519".
func (k KeyPair) Type() string {
	t, _, _ := strings.Cut(k.Public, " ")
	return t
}

// String prints the public half only.
func (k KeyPair) String() string { return k.Public + " (private key redacted)" }

// GoString keeps %#v from printing the private key.
func (k KeyPair) GoString() string { return "credentials.KeyPair{" + k.String() + "}" }

// Set is one job's credentials.
type Set struct {
	// Client is the key the executor logs in with.
	Client KeyPair
	// Host is the key the guest serves as its SSH host key.
	Host KeyPair
	// Password is empty unless requested.
	Password string
}

// String describes the set without secrets.
func (s Set) String() string {
	pw := "none"
	if s.Password != "" {
		pw = "redacted"
	}
	return fmt.Sprintf("client %s, host %s, password %s", s.Client.Public, s.Host.Public, pw)
}

// GoString keeps %#v from printing secrets.
func (s Set) GoString() string { return "credentials.Set{" + s.String() + "}" }

// Generate creates a fresh Set from r (crypto/rand.Reader when nil), with a
// password of passwordLength characters when passwordLength > 0 (see
// PasswordLengthFor). The password never contains username (Windows'
// complexity rule refuses a password holding an account name of three or
// more characters, in any case).
func Generate(r io.Reader, passwordLength int, username string) (*Set, error) {
	if r == nil {
		r = rand.Reader
	}
	client, err := NewKeyPair(r, "gitlab-runner-kubevirt")
	if err != nil {
		return nil, fmt.Errorf("generate client key: %w", err)
	}
	host, err := NewKeyPair(r, "")
	if err != nil {
		return nil, fmt.Errorf("generate host key: %w", err)
	}
	s := &Set{Client: client, Host: host}
	for passwordLength > 0 && (s.Password == "" || containsFold(s.Password, username)) {
		if s.Password, err = NewPassword(r, passwordLength); err != nil {
			return nil, fmt.Errorf("generate password: %w", err)
		}
	}
	return s, nil
}

// containsFold reports whether name, when it has three characters or more,
// occurs in password regardless of case.
func containsFold(password, name string) bool {
	return len(name) >= 3 && strings.Contains(strings.ToLower(password), strings.ToLower(name))
}

// NewKeyPair generates an ed25519 key pair from r (crypto/rand.Reader when
// nil); comment goes into the private key file.
func NewKeyPair(r io.Reader, comment string) (KeyPair, error) {
	if r == nil {
		r = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(r)
	if err != nil {
		return KeyPair{}, fmt.Errorf("ed25519: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return KeyPair{}, fmt.Errorf("marshal private key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return KeyPair{}, fmt.Errorf("marshal public key: %w", err)
	}
	return KeyPair{
		PrivatePEM: pem.EncodeToMemory(block),
		Public:     strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sshPub))),
	}, nil
}

// PasswordLengthFor returns the length of the password to generate for an
// OS plugin: 0 when it does not ask for one, else PasswordLength capped by
// the plugin's declared maximum. A maximum below MinPasswordLength is an
// error: such a password would be too weak to hand out.
func PasswordLengthFor(wantsPassword bool, pluginMax uint32) (int, error) {
	if !wantsPassword {
		return 0, nil
	}
	if pluginMax == 0 || pluginMax >= PasswordLength {
		return PasswordLength, nil
	}
	if pluginMax < MinPasswordLength {
		return 0, fmt.Errorf("the OS plugin accepts passwords of at most %d characters; at least %d are needed for a safe random password", pluginMax, MinPasswordLength)
	}
	return int(pluginMax), nil
}

// NewPassword returns length random characters from r (crypto/rand.Reader
// when nil) in the shape the plugin contract documents (see
// pluginapi.GeneratePassword).
func NewPassword(r io.Reader, length int) (string, error) {
	return pluginapi.GeneratePassword(r, length)
}
