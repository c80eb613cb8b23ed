package cloudinit

import (
	"fmt"

	"sigs.k8s.io/yaml"
)

// Header is the first line of cloud-init user-data in cloud-config format.
const Header = "#cloud-config\n"

// SudoAll is the sudo rule the user gets unless the sudo option is "false".
const SudoAll = "ALL=(ALL) NOPASSWD:ALL"

// LoginShell is the user's login shell; RunCommand is written for it.
const LoginShell = "/bin/bash"

// cloudConfig is the #cloud-config document. Every field is a cloud-init
// module key (cloud-init docs, "Module reference"); omitempty fields are
// left out when the request does not set them.
type cloudConfig struct {
	Users []user `json:"users"`
	// DisableRoot blocks root logins with the job's key (cc_ssh).
	DisableRoot bool `json:"disable_root"`
	// SSHPwauth enables sshd password authentication (cc_set_passwords).
	SSHPwauth bool `json:"ssh_pwauth"`
	// SSHDeleteKeys removes the image's host keys (cc_ssh).
	SSHDeleteKeys bool `json:"ssh_deletekeys"`
	// SSHGenKeyTypes must not be empty (a schema error in cloud-init
	// 22.4); with ssh_keys given cloud-init writes those instead.
	SSHGenKeyTypes []string `json:"ssh_genkeytypes"`
	// SSHKeys are the host keys to install: <type>_private, <type>_public.
	SSHKeys map[string]string `json:"ssh_keys"`
	// PreserveHostname false lets cloud-init set hostname/fqdn.
	PreserveHostname *bool  `json:"preserve_hostname,omitempty"`
	Hostname         string `json:"hostname,omitempty"`
	FQDN             string `json:"fqdn,omitempty"`
	Timezone         string `json:"timezone,omitempty"`
}

// user is one entry of the users list (cc_users_groups).
type user struct {
	Name              string   `json:"name"`
	Groups            []string `json:"groups,omitempty"`
	Shell             string   `json:"shell"`
	Sudo              string   `json:"sudo,omitempty"`
	LockPasswd        bool     `json:"lock_passwd"`
	HashedPasswd      string   `json:"hashed_passwd,omitempty"`
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
}

// marshal renders c as user-data: the #cloud-config header and YAML.
func (c *cloudConfig) marshal() ([]byte, error) {
	body, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("marshal cloud-config: %w", err)
	}
	return append([]byte(Header), body...), nil
}
