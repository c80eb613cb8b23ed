package standin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
	"sigs.k8s.io/yaml"
)

// cloudConfigHeader is the first line cloud-init requires of a cloud-config
// user-data document.
const cloudConfigHeader = "#cloud-config"

// guestConfig is what the stand-in takes from first-boot data: what a
// guest's cloud-init would apply before sshd serves logins.
type guestConfig struct {
	// User is users[0].name.
	User string
	// AuthorizedKeys are users[0].ssh_authorized_keys.
	AuthorizedKeys []string
	// HostKey is ssh_keys.ed25519_private (PEM); nil when the document
	// has none, in which case a guest generates a random host key.
	HostKey []byte
	// HostPublicKey is ssh_keys.ed25519_public as written ("" if absent).
	HostPublicKey string
}

// cloudConfig is the subset of cloud-config the stand-in reads.
type cloudConfig struct {
	Users   []json.RawMessage `json:"users"`
	SSHKeys map[string]any    `json:"ssh_keys"`
}

type cloudUser struct {
	Name              string   `json:"name"`
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
}

// parseUserData reads a #cloud-config document. Errors name the key that is
// wrong and the rule, and never quote key material.
func parseUserData(data []byte) (guestConfig, error) {
	var gc guestConfig
	firstLine, _, _ := bytes.Cut(data, []byte("\n"))
	if strings.TrimRight(string(firstLine), "\r \t") != cloudConfigHeader {
		return gc, fmt.Errorf("user-data: must start with the line %q (cloud-init ignores anything else); it is %d bytes starting with %d other bytes",
			cloudConfigHeader, len(data), len(firstLine))
	}
	var cc cloudConfig
	if err := yaml.Unmarshal(data, &cc); err != nil {
		return gc, fmt.Errorf("user-data: not a YAML cloud-config document: %w", err)
	}
	if len(cc.Users) == 0 {
		return gc, fmt.Errorf("user-data: users: must list at least one user")
	}
	var u cloudUser
	if err := json.Unmarshal(cc.Users[0], &u); err != nil {
		return gc, fmt.Errorf("user-data: users[0]: must be a mapping with name and ssh_authorized_keys (the stand-in has no distro default user): %w", err)
	}
	if u.Name == "" {
		return gc, fmt.Errorf("user-data: users[0].name: must be set")
	}
	if strings.ContainsAny(u.Name, "\x00\r\n:/") {
		return gc, fmt.Errorf("user-data: users[0].name %q: must not contain NUL, newlines, ':' or '/'", u.Name)
	}
	gc.User = u.Name
	if len(u.SSHAuthorizedKeys) == 0 {
		return gc, fmt.Errorf("user-data: users[0].ssh_authorized_keys: must list at least one key (the executor logs in with its per-job key)")
	}
	for i, k := range u.SSHAuthorizedKeys {
		if strings.ContainsAny(k, "\r\n") {
			return gc, fmt.Errorf("user-data: users[0].ssh_authorized_keys[%d]: must be a single line", i)
		}
		if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(k)); err != nil {
			return gc, fmt.Errorf("user-data: users[0].ssh_authorized_keys[%d]: must be an authorized_keys line: %w", i, err)
		}
		gc.AuthorizedKeys = append(gc.AuthorizedKeys, k)
	}

	if v, ok := cc.SSHKeys["ed25519_private"]; ok {
		s, isString := v.(string)
		if !isString || s == "" {
			return gc, fmt.Errorf("user-data: ssh_keys.ed25519_private: must be a non-empty PEM string (it is a %T)", v)
		}
		signer, err := ssh.ParsePrivateKey([]byte(s))
		if err != nil {
			// The parser's message does not contain the key.
			return gc, fmt.Errorf("user-data: ssh_keys.ed25519_private: must be an unencrypted private key in PEM format (%d bytes given): %w", len(s), err)
		}
		if t := signer.PublicKey().Type(); t != ssh.KeyAlgoED25519 {
			return gc, fmt.Errorf("user-data: ssh_keys.ed25519_private: must be an ed25519 key, it is %s", t)
		}
		gc.HostKey = []byte(s)
	}
	if v, ok := cc.SSHKeys["ed25519_public"]; ok {
		s, _ := v.(string)
		gc.HostPublicKey = strings.TrimSpace(s)
	}
	return gc, nil
}
