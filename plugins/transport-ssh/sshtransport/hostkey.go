package sshtransport

import (
	"bytes"
	"fmt"
	"net"
	"strings"

	"golang.org/x/crypto/ssh"
)

// HostKeyMismatchError is returned when the guest presents a host key that
// is not pinned in Target.HostKeys.
type HostKeyMismatchError struct {
	// Addr is the address dialled.
	Addr string
	// Presented is the SHA256 fingerprint of the key the guest presented,
	// with its type ("ssh-ed25519 SHA256:...").
	Presented string
	// Expected are the fingerprints of the pinned keys, in the same form.
	Expected []string
}

func (e *HostKeyMismatchError) Error() string {
	return fmt.Sprintf("host key mismatch for %s: the guest presented %s but only %s is pinned; "+
		"this may be a man-in-the-middle attack, or a guest that did not apply its first-boot data "+
		"(which installs the pinned host key)",
		e.Addr, e.Presented, strings.Join(e.Expected, " or "))
}

func fingerprint(k ssh.PublicKey) string {
	return k.Type() + " " + ssh.FingerprintSHA256(k)
}

// pinnedHostKey accepts exactly the keys in pinned.
func pinnedHostKey(pinned []ssh.PublicKey) ssh.HostKeyCallback {
	return func(_ string, remote net.Addr, key ssh.PublicKey) error {
		for _, p := range pinned {
			if p.Type() == key.Type() && bytes.Equal(p.Marshal(), key.Marshal()) {
				return nil
			}
		}
		e := &HostKeyMismatchError{Addr: remote.String(), Presented: fingerprint(key)}
		for _, p := range pinned {
			e.Expected = append(e.Expected, fingerprint(p))
		}
		return e
	}
}

// hostKeyAlgorithms lists the signature algorithms of the pinned keys, so a
// guest that has several host keys (RSA, ECDSA, ed25519) presents the
// pinned one instead of its preferred one.
func hostKeyAlgorithms(pinned []ssh.PublicKey) []string {
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, p := range pinned {
		if p.Type() == ssh.KeyAlgoRSA {
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
		}
		add(p.Type())
	}
	return algos
}
