package sshd

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// KeyPair is an SSH key pair in the formats sshd and clients read.
type KeyPair struct {
	// PrivateKeyPEM is the private key in OpenSSH PEM format
	// ("-----BEGIN OPENSSH PRIVATE KEY-----").
	PrivateKeyPEM []byte
	// AuthorizedKey is the public key in authorized_keys format, without a
	// trailing newline ("ssh-ed25519 AAAA...").
	AuthorizedKey string
	// Signer signs with the private key (for x/crypto/ssh clients).
	Signer ssh.Signer
}

// NewKeyPair generates a fresh ed25519 key pair.
func NewKeyPair() (KeyPair, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("generate ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return KeyPair{}, fmt.Errorf("marshal ed25519 key: %w", err)
	}
	return ParseKeyPair(pem.EncodeToMemory(block))
}

// ParseKeyPair derives the public key and signer of an unencrypted private
// key in PEM format. Its errors never contain the key.
func ParseKeyPair(privateKeyPEM []byte) (KeyPair, error) {
	signer, err := ssh.ParsePrivateKey(privateKeyPEM)
	if err != nil {
		return KeyPair{}, fmt.Errorf("parse private key (%d bytes of PEM): %w", len(privateKeyPEM), err)
	}
	return KeyPair{
		PrivateKeyPEM: privateKeyPEM,
		AuthorizedKey: AuthorizedKey(signer.PublicKey()),
		Signer:        signer,
	}, nil
}

// AuthorizedKey formats key as one authorized_keys line without the
// trailing newline.
func AuthorizedKey(key ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key)))
}
