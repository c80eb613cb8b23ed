package osutil

import (
	"bytes"
	"encoding/pem"
	"errors"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Redacted stands in for a secret value in error messages.
const Redacted = "[redacted]"

// Request field names as the errors spell them (the proto field names).
const (
	FieldAuthorizedKey  = "authorized_key"
	FieldHostKeyType    = "host_key.type"
	FieldHostKeyPrivate = "host_key.private_key"
	FieldHostKeyPublic  = "host_key.public_key"
)

// HostKeyType is the only host key algorithm the first-party OS plugins
// install: the core generates an ed25519 host key per job.
const HostKeyType = ssh.KeyAlgoED25519

// maxKeyLine bounds an authorized_keys line; an ed25519 key is about 100
// bytes, an RSA-16384 key about 2.8 KB.
const maxKeyLine = 8192

// maxPrivateKey bounds a PEM private key.
const maxPrivateKey = 16384

// opensshPEMType is the PEM block type of an OpenSSH private key.
const opensshPEMType = "OPENSSH PRIVATE KEY"

// AuthorizedKey parses line, a single public key in authorized_keys format
// ("ssh-ed25519 AAAA... comment"), given in the request field named field.
// Options ("from=..." prefixes), a second line and control characters are
// refused. It returns the key re-encoded from its parsed form as
// "<type> <base64>", without the comment.
func AuthorizedKey(field, line string) (string, ssh.PublicKey, error) {
	switch {
	case line == "":
		return "", nil, pluginapi.InvalidInput(field, line, "is required: one public key in authorized_keys format")
	case strings.Contains(line, "PRIVATE KEY"):
		// Someone passed the private half: never echo it.
		return "", nil, pluginapi.InvalidInput(field, Redacted, "looks like a private key; it must be a public key in authorized_keys format")
	case len(line) > maxKeyLine:
		return "", nil, pluginapi.InvalidInput(field, Truncate(line), "is %d bytes long; at most %d are allowed", len(line), maxKeyLine)
	case HasControl(line):
		return "", nil, pluginapi.InvalidInput(field, Truncate(line), "must be a single line without control characters")
	}
	pub, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	switch {
	case err != nil:
		return "", nil, pluginapi.InvalidInput(field, line, "must be a public key in authorized_keys format (\"ssh-ed25519 AAAA...\"): %v", err)
	case len(options) > 0:
		return "", nil, pluginapi.InvalidInput(field, line, "must not carry authorized_keys options (%s)", strings.Join(options, ","))
	case len(bytes.TrimSpace(rest)) > 0:
		return "", nil, pluginapi.InvalidInput(field, line, "must hold exactly one key")
	}
	return KeyLine(pub), pub, nil
}

// KeyLine returns pub as "<type> <base64>", the canonical authorized_keys
// form without options or comment.
func KeyLine(pub ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// HostKey is a validated per-job SSH host key, re-encoded from its parsed
// form.
type HostKey struct {
	// Type is the key algorithm, always HostKeyType.
	Type string
	// PrivatePEM is the private key in OpenSSH PEM format, ending in a
	// newline.
	PrivatePEM []byte
	// Public is the public key as "<type> <base64>".
	Public string
}

// ParseHostKey validates the request's host key: an unencrypted ed25519
// private key in OpenSSH PEM format, the matching public key in
// authorized_keys format, and the type naming that algorithm. The private
// key is never quoted in an error.
func ParseHostKey(hk *pluginv1.HostKey) (HostKey, error) {
	if hk == nil {
		return HostKey{}, pluginapi.InvalidInput("host_key", "", "is required: the per-job SSH host key the transport pins")
	}
	if hk.GetType() != HostKeyType {
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyType, hk.GetType(), "must be %q (the only host key type this plugin installs)", HostKeyType)
	}
	public, pub, err := AuthorizedKey(FieldHostKeyPublic, hk.GetPublicKey())
	if err != nil {
		return HostKey{}, err
	}
	if pub.Type() != hk.GetType() {
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPublic, public, "is a %s key, but host_key.type says %s", pub.Type(), hk.GetType())
	}
	raw := hk.GetPrivateKey()
	switch {
	case len(raw) == 0:
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPrivate, "", "is required: an unencrypted private key in OpenSSH PEM format")
	case len(raw) > maxPrivateKey:
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPrivate, Redacted, "is %d bytes long; at most %d are allowed", len(raw), maxPrivateKey)
	}
	// One PEM block of type OPENSSH PRIVATE KEY and nothing else: the guest's
	// sshd reads this format. It is re-armoured from the decoded block, so
	// stray headers or trailing bytes never reach the document.
	block, rest := pem.Decode(raw)
	switch {
	case block == nil:
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPrivate, Redacted, "must be a PEM block (-----BEGIN %s-----)", opensshPEMType)
	case block.Type != opensshPEMType:
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPrivate, Redacted, "is a %q PEM block; it must be %q", block.Type, opensshPEMType)
	case len(block.Headers) > 0:
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPrivate, Redacted, "must not carry PEM headers (an encrypted key?)")
	case len(bytes.TrimSpace(rest)) > 0:
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPrivate, Redacted, "must hold exactly one PEM block")
	}
	canonical := pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: block.Bytes})
	key, err := ssh.ParseRawPrivateKey(canonical)
	if err != nil {
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPrivate, Redacted, "is encrypted; it must be an unencrypted private key")
		}
		// The parser's messages hold no key bytes, but stay terse anyway.
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPrivate, Redacted, "does not parse as an OpenSSH private key")
	}
	signer, err := ssh.NewSignerFromKey(key)
	if err != nil {
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPrivate, Redacted, "is a key type SSH cannot use")
	}
	if got := signer.PublicKey(); got.Type() != HostKeyType {
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPrivate, Redacted, "is a %s key; it must be %s", got.Type(), HostKeyType)
	}
	if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) {
		return HostKey{}, pluginapi.InvalidInput(FieldHostKeyPublic, public, "does not match host_key.private_key (the public half of the private key is %s)", KeyLine(signer.PublicKey()))
	}
	return HostKey{Type: HostKeyType, PrivatePEM: canonical, Public: public}, nil
}
