package cloudinit

import (
	"regexp"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil"
)

// Option keys this plugin accepts.
const (
	OptionSudo   = "sudo"
	OptionGroups = "groups"
)

// OptionKeys lists every option key the plugin accepts, sorted.
func OptionKeys() []string { return []string{OptionGroups, OptionSudo} }

// namePattern is useradd's default rule for user and group names (Debian's
// NAME_REGEX without the trailing $ some systems allow), at most 32
// characters.
var namePattern = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// Password bounds: a password is hashed, never stored, so only sanity
// limits apply.
const (
	minPassword = 8
	maxPassword = 256
	// maxGroups bounds the groups option.
	maxGroups = 32
)

// checkUsername applies useradd's rule; root is refused because
// disable_root locks it for SSH.
func checkUsername(name string) error {
	if !namePattern.MatchString(name) {
		return pluginapi.InvalidInput("username", osutil.Truncate(name), "must match %s (useradd's rule: a lower-case letter or _, then up to 31 lower-case letters, digits, _ or -)", namePattern)
	}
	if name == "root" {
		return pluginapi.InvalidInput("username", name, "must not be root: the user-data sets disable_root")
	}
	return nil
}

// checkPassword bounds an optional password; the value is never quoted.
func checkPassword(pw string) error {
	switch {
	case pw == "":
		return nil
	case len(pw) < minPassword || len(pw) > maxPassword:
		return pluginapi.InvalidInput("password", osutil.Redacted, "must be %d to %d bytes long (it has %d)", minPassword, maxPassword, len(pw))
	case osutil.HasControl(pw):
		return pluginapi.InvalidInput("password", osutil.Redacted, "must be valid UTF-8 without control characters")
	}
	return nil
}

// hostnames splits a validated hostname into the short host name and, when
// it has more than one label, the fully qualified name. Empty means the
// image's default.
func hostnames(h string) (host, fqdn string, err error) {
	if h == "" {
		return "", "", nil
	}
	if errs := validation.IsDNS1123Subdomain(h); len(errs) > 0 {
		return "", "", pluginapi.InvalidInput("hostname", osutil.Truncate(h), "must be an RFC 1123 host name: %s", strings.Join(errs, "; "))
	}
	host, _, dotted := strings.Cut(h, ".")
	if errs := validation.IsDNS1123Label(host); len(errs) > 0 {
		return "", "", pluginapi.InvalidInput("hostname", osutil.Truncate(h), "its first label %q must be an RFC 1123 label: %s", host, strings.Join(errs, "; "))
	}
	if dotted {
		fqdn = h
	}
	return host, fqdn, nil
}

// groupsOption returns the validated groups option.
func groupsOption(options map[string]string) ([]string, error) {
	groups := osutil.ListOption(options, OptionGroups)
	if len(groups) > maxGroups {
		return nil, pluginapi.InvalidInput(osutil.OptionField(OptionGroups), osutil.Truncate(options[OptionGroups]), "lists %d groups; at most %d are allowed", len(groups), maxGroups)
	}
	for _, g := range groups {
		if !namePattern.MatchString(g) {
			return nil, pluginapi.InvalidInput(osutil.OptionField(OptionGroups), osutil.Truncate(g), "each group must match %s", namePattern)
		}
	}
	return groups, nil
}
