package conformance

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
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

// newPassword returns a password exactly as the core generates it for a
// plugin declaring maxLength (0: no limit).
func newPassword(maxLength uint32) (string, error) {
	length := pluginapi.DefaultPasswordLength
	if maxLength > 0 && int(maxLength) < length {
		length = int(maxLength)
	}
	return pluginapi.GeneratePassword(nil, length)
}

// randomName returns a lower-case name safe in any path or hostname.
func randomName(prefix string) (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random name: %w", err)
	}
	return fmt.Sprintf("%s-%x", prefix, b), nil
}
