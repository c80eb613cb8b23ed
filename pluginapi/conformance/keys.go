package conformance

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"fmt"
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

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// newPassword returns a random password that meets common complexity rules
// (Windows: upper and lower case, digit, symbol; at least 14 characters).
func newPassword() (string, error) {
	tok, err := randomToken(18)
	if err != nil {
		return "", err
	}
	return "Cf-" + tok + "9a!", nil
}

// randomName returns a lower-case name safe in any path or hostname.
func randomName(prefix string) (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	return fmt.Sprintf("%s-%x", prefix, b), nil
}
