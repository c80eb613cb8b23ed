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
	"math/big"
	"strings"

	"golang.org/x/crypto/ssh"
)

// PasswordLength is the length of generated passwords.
const PasswordLength = 32

// Password alphabet: every class Windows' complexity rules count, minus
// characters that need quoting in shells, YAML or INI files.
const (
	lower   = "abcdefghijkmnopqrstuvwxyz"
	upper   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	digit   = "23456789"
	symbol  = "-_.+=@"
	charset = lower + upper + digit + symbol
)

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
// password when withPassword is true.
func Generate(r io.Reader, withPassword bool) (*Set, error) {
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
	if withPassword {
		if s.Password, err = NewPassword(r); err != nil {
			return nil, fmt.Errorf("generate password: %w", err)
		}
	}
	return s, nil
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

// NewPassword returns PasswordLength random characters from r
// (crypto/rand.Reader when nil) with at least one lower-case letter,
// upper-case letter, digit and symbol.
func NewPassword(r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	max := big.NewInt(int64(len(charset)))
	for {
		b := make([]byte, PasswordLength)
		for i := range b {
			n, err := rand.Int(r, max)
			if err != nil {
				return "", err
			}
			b[i] = charset[n.Int64()]
		}
		p := string(b)
		if strings.ContainsAny(p, lower) && strings.ContainsAny(p, upper) &&
			strings.ContainsAny(p, digit) && strings.ContainsAny(p, symbol) {
			return p, nil
		}
	}
}
