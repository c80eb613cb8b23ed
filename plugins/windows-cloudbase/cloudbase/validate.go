package cloudbase

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil"
)

// Option keys this plugin accepts.
const (
	OptionShell  = "shell"
	OptionGroups = "groups"
)

// OptionKeys lists every option key the plugin accepts, sorted.
func OptionKeys() []string { return []string{OptionGroups, OptionShell} }

// Limits from Windows and Cloudbase-Init.
const (
	// MaxUsername: a local account's logon name has at most 20 characters
	// (Microsoft, "User name formats"/NetUserAdd).
	MaxUsername = 20
	// MaxGroupName: a local group name has at most 256 characters.
	MaxGroupName = 256
	// MaxPassword: Cloudbase-Init's cloud-config users plugin refuses a
	// longer passwd (osutils.get_maximum_password_length() is 20 on
	// Windows, cloudbaseinit/osutils/windows.py) and the user is then not
	// created at all.
	MaxPassword = 20
	// MinPassword is this plugin's floor; Windows' default policy for
	// servers wants at least 7 (MinimumPasswordLength) characters.
	MinPassword = 8
	// MaxHostname is the NetBIOS computer name limit; Cloudbase-Init
	// truncates longer names (netbios_host_name_compatibility).
	MaxHostname = 15
	// maxGroups bounds the groups option.
	maxGroups = 32
)

// forbiddenNameChars may not appear in a Windows user or group name
// (Microsoft, "Local accounts"/net user: " / \ [ ] : ; | = , + * ? < > @).
const forbiddenNameChars = `"/\[]:;|=,+*?<>@`

// printableASCII reports whether s is only characters 0x20..0x7E.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkName applies Windows' rules for a local user or group name, plus
// this plugin's: printable ASCII (the name lands in a script Windows
// PowerShell 5.1 reads in the ANSI code page) and no space at either end.
func checkName(field, name string, max int) error {
	switch {
	case name == "":
		return pluginapi.InvalidInput(field, name, "is required")
	case len(name) > max:
		return pluginapi.InvalidInput(field, osutil.Truncate(name), "has %d characters; Windows allows at most %d", len(name), max)
	case !printableASCII(name):
		return pluginapi.InvalidInput(field, osutil.Truncate(name), "must be printable ASCII (0x20-0x7E)")
	case strings.ContainsAny(name, forbiddenNameChars):
		return pluginapi.InvalidInput(field, name, `must not contain any of %s (Windows' rule for account names)`, forbiddenNameChars)
	case strings.Trim(name, ". ") == "":
		return pluginapi.InvalidInput(field, name, "must not consist of dots and spaces only (Windows' rule for account names)")
	case strings.TrimSpace(name) != name:
		return pluginapi.InvalidInput(field, name, "must not start or end with a space")
	}
	return nil
}

// checkPassword applies Cloudbase-Init's length limit and Windows' default
// complexity rule. The value is never quoted.
func checkPassword(password, username string) error {
	const field = "password"
	switch {
	case password == "":
		return pluginapi.InvalidInput(field, "", "is required: Cloudbase-Init sets it as the user's password (declare the %q capability to get one)", CapabilityPassword)
	case len(password) < MinPassword || len(password) > MaxPassword:
		return pluginapi.InvalidInput(field, osutil.Redacted, "must be %d to %d characters long (it has %d): Cloudbase-Init refuses longer passwords and then does not create the user", MinPassword, MaxPassword, len(password))
	case !printableASCII(password):
		return pluginapi.InvalidInput(field, osutil.Redacted, "must be printable ASCII (0x20-0x7E)")
	}
	classes := 0
	for _, in := range []func(byte) bool{
		func(c byte) bool { return 'a' <= c && c <= 'z' },
		func(c byte) bool { return 'A' <= c && c <= 'Z' },
		func(c byte) bool { return '0' <= c && c <= '9' },
		func(c byte) bool { return !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') },
	} {
		for i := 0; i < len(password); i++ {
			if in(password[i]) {
				classes++
				break
			}
		}
	}
	if classes < 3 {
		return pluginapi.InvalidInput(field, osutil.Redacted, "must contain characters of at least three of: lower-case letters, upper-case letters, digits, symbols (Windows' password complexity rule)")
	}
	// Windows' complexity rule also refuses a password that contains the
	// account name when that is longer than two characters.
	if len(username) > 2 && strings.Contains(strings.ToLower(password), strings.ToLower(username)) {
		return pluginapi.InvalidInput(field, osutil.Redacted, "must not contain the username (Windows' password complexity rule)")
	}
	return nil
}

// checkHostname applies RFC 1123 and the NetBIOS limits. Empty means the
// name from the ConfigDrive meta-data.
func checkHostname(h string) error {
	if h == "" {
		return nil
	}
	if errs := validation.IsDNS1123Label(h); len(errs) > 0 {
		return pluginapi.InvalidInput("hostname", osutil.Truncate(h), "must be an RFC 1123 label (a Windows computer name has one label): %s", strings.Join(errs, "; "))
	}
	if len(h) > MaxHostname {
		return pluginapi.InvalidInput("hostname", h, "has %d characters; a Windows computer name (NetBIOS) has at most %d", len(h), MaxHostname)
	}
	if strings.Trim(h, "0123456789") == "" {
		return pluginapi.InvalidInput("hostname", h, "must not be digits only (Windows' rule for computer names)")
	}
	return nil
}

// shellOption returns the validated shell option.
func shellOption(options map[string]string) (string, error) {
	shell, ok := options[OptionShell]
	if !ok {
		return ShellPwsh, nil
	}
	if shell != ShellPwsh && shell != ShellPowerShell {
		return "", pluginapi.InvalidInput(osutil.OptionField(OptionShell), osutil.Truncate(shell), "must be %q or %q", ShellPwsh, ShellPowerShell)
	}
	return shell, nil
}

// groupsOption returns the validated extra groups.
func groupsOption(options map[string]string) ([]string, error) {
	field := osutil.OptionField(OptionGroups)
	groups := osutil.ListOption(options, OptionGroups)
	if len(groups) > maxGroups {
		return nil, pluginapi.InvalidInput(field, osutil.Truncate(options[OptionGroups]), "lists %d groups; at most %d are allowed", len(groups), maxGroups)
	}
	for _, g := range groups {
		if err := checkName(field, g, MaxGroupName); err != nil {
			return nil, err
		}
	}
	return groups, nil
}
