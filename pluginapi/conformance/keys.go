package conformance

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"math/big"
	"strings"

	"golang.org/x/crypto/ssh"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// keyPair is a fresh SSH key: the private key in OpenSSH PEM format and the
// public key as an authorized_keys line.
type keyPair struct {
	privatePEM    []byte
	authorizedKey string
}

func newKeyPair() (keyPair, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return keyPair{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return keyPair{}, fmt.Errorf("marshal ed25519 key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return keyPair{}, fmt.Errorf("ed25519 signer: %w", err)
	}
	return keyPair{
		privatePEM:    pem.EncodeToMemory(block),
		authorizedKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
	}, nil
}

func (k keyPair) hostKey() *pluginv1.HostKey {
	return &pluginv1.HostKey{Type: ssh.KeyAlgoED25519, PrivateKey: k.privatePEM, PublicKey: k.authorizedKey}
}

// Password shape: what the core's credentials package generates today
// (core/credentials: 32 characters, every class Windows' complexity rules
// count, no character that needs quoting in shells, YAML or INI). The
// contract does not fix it, so the kit hands plugins the real thing.
const (
	passwordLength  = 32
	passwordLower   = "abcdefghijkmnopqrstuvwxyz"
	passwordUpper   = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	passwordDigit   = "23456789"
	passwordSymbol  = "-_.+=@"
	passwordCharset = passwordLower + passwordUpper + passwordDigit + passwordSymbol
)

// newPassword returns a random password shaped like the core's, with at
// least one character of each class.
func newPassword() (string, error) {
	for {
		b := make([]byte, passwordLength)
		for i := range b {
			n, err := rand.Int(rand.Reader, big.NewInt(int64(len(passwordCharset))))
			if err != nil {
				return "", fmt.Errorf("random password: %w", err)
			}
			b[i] = passwordCharset[n.Int64()]
		}
		p := string(b)
		if strings.ContainsAny(p, passwordLower) && strings.ContainsAny(p, passwordUpper) &&
			strings.ContainsAny(p, passwordDigit) && strings.ContainsAny(p, passwordSymbol) {
			return p, nil
		}
	}
}

// randomName returns a lower-case name safe in any path or hostname.
func randomName(prefix string) (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	return fmt.Sprintf("%s-%x", prefix, b), nil
}
