package sshtransport

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// defaultPort is used when Target.Port is 0 (unset).
const defaultPort = 22

// endpoint is a validated Target.
type endpoint struct {
	addr     string // host:port
	user     string
	signer   ssh.Signer // nil without a private key
	password string     // empty without a password
	hostKeys []ssh.PublicKey
	opts     Options
	// key identifies the connection in the pool. It hashes the
	// credentials; it never contains them.
	key string
}

// String names the endpoint in logs and errors: user@host:port, no secrets.
func (e *endpoint) String() string { return e.user + "@" + e.addr }

// parseTarget validates t. Every refusal is an InvalidArgument error naming
// the field; secrets are never quoted.
func parseTarget(t *pluginv1.Target) (*endpoint, error) {
	if t == nil {
		return nil, pluginapi.InvalidInput("target", "", "is required")
	}
	host := t.GetHost()
	if host == "" || len(host) > 253 || strings.IndexFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return nil, pluginapi.InvalidInput("target.host", host, "must be a host name or IP address of 1..253 characters without spaces or control characters")
	}
	port := t.GetPort()
	if port == 0 {
		port = defaultPort
	}
	if port > 65535 {
		return nil, pluginapi.InvalidInput("target.port", strconv.FormatUint(uint64(port), 10), "must be in 1..65535")
	}
	user := t.GetUsername()
	if user == "" || len(user) > 256 || strings.IndexFunc(user, unicode.IsControl) >= 0 {
		return nil, pluginapi.InvalidInput("target.username", user, "must be 1..256 characters without control characters")
	}
	if len(t.GetPrivateKey()) == 0 && t.GetPassword() == "" {
		return nil, pluginapi.InvalidInput("target.private_key", "", "a private key or a password is required")
	}
	opts, err := ParseOptions(t.GetOptions())
	if err != nil {
		return nil, err
	}
	e := &endpoint{
		addr:     net.JoinHostPort(host, strconv.FormatUint(uint64(port), 10)),
		user:     user,
		password: t.GetPassword(),
		opts:     opts,
	}
	if pk := t.GetPrivateKey(); len(pk) > 0 {
		signer, err := ssh.ParsePrivateKey(pk)
		if err != nil {
			rule := "must be an unencrypted private key in OpenSSH PEM format"
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				rule = "is protected by a passphrase; the transport needs an unencrypted key"
			}
			return nil, pluginapi.InvalidInput("target.private_key", fmt.Sprintf("(%d bytes, not shown)", len(pk)), "%s", rule)
		}
		e.signer = signer
	}
	if len(t.GetHostKeys()) == 0 {
		return nil, pluginapi.InvalidInput("target.host_keys", "", "at least one pinned host key is required: the transport never accepts an unknown host key")
	}
	for i, line := range t.GetHostKeys() {
		k, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil || len(strings.TrimSpace(string(rest))) > 0 {
			return nil, pluginapi.InvalidInput(fmt.Sprintf("target.host_keys[%d]", i), line, "must be one public key in authorized_keys format (\"ssh-ed25519 AAAA...\")")
		}
		e.hostKeys = append(e.hostKeys, k)
	}
	e.key = poolKey(e, t)
	return e, nil
}

// poolKey hashes everything that makes a connection different: where, who,
// with which credentials, trusting which host keys, with which keepalive.
func poolKey(e *endpoint, t *pluginv1.Target) string {
	h := sha256.New()
	field := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	field([]byte(e.addr))
	field([]byte(e.user))
	field(t.GetPrivateKey())
	field([]byte(t.GetPassword()))
	keys := make([]string, 0, len(e.hostKeys))
	for _, k := range e.hostKeys {
		keys = append(keys, string(k.Marshal()))
	}
	sort.Strings(keys)
	for _, k := range keys {
		field([]byte(k))
	}
	field([]byte(e.opts.KeepaliveInterval.String()))
	field([]byte(strconv.Itoa(e.opts.KeepaliveCountMax)))
	return hex.EncodeToString(h.Sum(nil))
}

// clientConfig returns the x/crypto/ssh configuration: pinned host keys,
// key then password authentication.
func (e *endpoint) clientConfig() *ssh.ClientConfig {
	var auth []ssh.AuthMethod
	if e.signer != nil {
		auth = append(auth, ssh.PublicKeys(e.signer))
	}
	if e.password != "" {
		pw := e.password
		auth = append(auth, ssh.Password(pw),
			// Servers with PAM often ask for the password through
			// keyboard-interactive instead.
			ssh.KeyboardInteractive(func(_, _ string, questions []string, echos []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range questions {
					if !echos[i] {
						answers[i] = pw
					}
				}
				return answers, nil
			}))
	}
	return &ssh.ClientConfig{
		User:              e.user,
		Auth:              auth,
		HostKeyCallback:   pinnedHostKey(e.hostKeys),
		HostKeyAlgorithms: hostKeyAlgorithms(e.hostKeys),
		ClientVersion:     "SSH-2.0-gitlab-runner-kubevirt-transport-ssh",
	}
}
