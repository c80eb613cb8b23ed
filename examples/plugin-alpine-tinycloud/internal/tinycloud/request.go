package tinycloud

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Shells a job may run in. Alpine ships BusyBox sh; bash is a package.
const (
	shellSh   = "sh"
	shellBash = "bash"
)

// Plugin options (--os-plugin-option key=value).
const (
	optShell    = "shell"
	optPackages = "packages"
)

const maxPackages = 50

var (
	// usernamePattern is the portable POSIX user name adduser accepts.
	usernamePattern = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	// hostnamePattern is an RFC 1123 host name: dot-separated labels.
	hostnamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
	// packagePattern is an Alpine package name as apk takes it.
	packagePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9+._-]{0,127}$`)
)

// hostKeyFile names the file under /etc/ssh where sshd reads a host key
// of the given type.
func hostKeyFile(keyType string) (string, bool) {
	switch keyType {
	case ssh.KeyAlgoED25519:
		return "ssh_host_ed25519_key", true
	case ssh.KeyAlgoECDSA256:
		return "ssh_host_ecdsa_key", true
	case ssh.KeyAlgoRSA:
		return "ssh_host_rsa_key", true
	}
	return "", false
}

// input is a validated request.
type input struct {
	username      string
	authorizedKey string
	hostKeyFile   string
	hostPrivate   []byte
	hostPublic    string
	shell         string
	packages      []string
}

// parseRequest validates every field; errors are InvalidArgument and name
// the field, the value (never a secret) and the rule.
func parseRequest(req *pluginv1.RenderRequest) (input, error) {
	in := input{username: req.GetUsername(), shell: shellSh}
	if !usernamePattern.MatchString(in.username) {
		return input{}, pluginapi.InvalidInput("username", in.username, "must match %s", usernamePattern)
	}
	if in.username == "root" {
		return input{}, pluginapi.InvalidInput("username", in.username, "must not be root: jobs run as an unprivileged account")
	}
	if h := req.GetHostname(); len(h) > 253 || !hostnamePattern.MatchString(h) {
		return input{}, pluginapi.InvalidInput("hostname", h, "must be an RFC 1123 host name (lower-case letters, digits, '-', dot-separated labels, at most 253 characters)")
	}
	if tz := req.GetTimezone(); tz != "" {
		return input{}, pluginapi.InvalidInput("timezone", tz, "must be empty: tiny-cloud cannot set a time zone (bake it into the image)")
	}
	if req.GetPassword() != "" {
		return input{}, pluginapi.InvalidInput("password", "(not shown)", "must be empty: this plugin logs in by key only and does not declare the password capability")
	}
	authorized, err := oneKey("authorized_key", req.GetAuthorizedKey())
	if err != nil {
		return input{}, err
	}
	in.authorizedKey = authorized
	if err := in.parseHostKey(req.GetHostKey()); err != nil {
		return input{}, err
	}
	if err := in.parseOptions(req.GetOptions()); err != nil {
		return input{}, err
	}
	return in, nil
}

// oneKey parses exactly one public key in authorized_keys format and
// returns it normalised (type and base64, no comment, no options).
func oneKey(field, line string) (string, error) {
	if strings.ContainsAny(line, "\r\n\x00") {
		return "", pluginapi.InvalidInput(field, line, "must be a single line")
	}
	key, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil || len(rest) > 0 || len(options) > 0 {
		return "", pluginapi.InvalidInput(field, line, "must be one public key in authorized_keys format, without options")
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key))), nil
}

func (in *input) parseHostKey(hk *pluginv1.HostKey) error {
	file, ok := hostKeyFile(hk.GetType())
	if !ok {
		return pluginapi.InvalidInput("host_key.type", hk.GetType(), "must be %s, %s or %s", ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoRSA)
	}
	public, err := oneKey("host_key.public_key", hk.GetPublicKey())
	if err != nil {
		return err
	}
	pub, _, _, _, _ := ssh.ParseAuthorizedKey([]byte(public))
	if pub.Type() != hk.GetType() {
		return pluginapi.InvalidInput("host_key.public_key", public, "is a %s key, but host_key.type says %s", pub.Type(), hk.GetType())
	}
	// Never quote the private key: name its size instead.
	size := fmt.Sprintf("(%d bytes)", len(hk.GetPrivateKey()))
	signer, err := ssh.ParsePrivateKey(hk.GetPrivateKey())
	if err != nil {
		return pluginapi.InvalidInput("host_key.private_key", size, "must be an unencrypted private key in OpenSSH PEM format")
	}
	if !bytes.Equal(signer.PublicKey().Marshal(), pub.Marshal()) {
		return pluginapi.InvalidInput("host_key.private_key", size, "does not belong to host_key.public_key")
	}
	in.hostKeyFile, in.hostPrivate, in.hostPublic = file, hk.GetPrivateKey(), public
	return nil
}

func (in *input) parseOptions(opts map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(opts)) {
		v := opts[k]
		switch k {
		case optShell:
			if v != shellSh && v != shellBash {
				return pluginapi.InvalidInput("options[shell]", v, "must be %s or %s", shellSh, shellBash)
			}
			in.shell = v
		case optPackages:
			for _, p := range strings.Split(v, ",") {
				p = strings.TrimSpace(p)
				if !packagePattern.MatchString(p) {
					return pluginapi.InvalidInput("options[packages]", v, "must be comma-separated Alpine package names matching %s; %q does not", packagePattern, p)
				}
				if !slices.Contains(in.packages, p) {
					in.packages = append(in.packages, p)
				}
			}
			if len(in.packages) > maxPackages {
				return pluginapi.InvalidInput("options[packages]", v, "must name at most %d packages", maxPackages)
			}
		default:
			return pluginapi.InvalidInput("options", k, "unknown option: known options are %s and %s", optShell, optPackages)
		}
	}
	if in.shell == shellBash && !slices.Contains(in.packages, shellBash) {
		in.packages = append(in.packages, shellBash)
	}
	slices.Sort(in.packages)
	return nil
}
