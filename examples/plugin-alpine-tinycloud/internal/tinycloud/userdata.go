package tinycloud

import (
	"encoding/base64"
	"fmt"

	"sigs.k8s.io/yaml"
)

// cloudConfig is the part of #cloud-config that tiny-cloud implements and
// this plugin uses. Every field is marshalled as data: no value is ever
// spliced into YAML text.
type cloudConfig struct {
	Users      []user      `json:"users"`
	WriteFiles []writeFile `json:"write_files"`
	Packages   []string    `json:"packages,omitempty"`
}

type user struct {
	Name              string   `json:"name"`
	Shell             string   `json:"shell"`
	LockPasswd        bool     `json:"lock_passwd"`
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
}

type writeFile struct {
	Path        string `json:"path"`
	Permissions string `json:"permissions"`
	Owner       string `json:"owner"`
	Encoding    string `json:"encoding,omitempty"`
	Content     string `json:"content"`
}

// renderUserData builds the #cloud-config document: the job account with
// its key, and the pinned SSH host key, which tiny-cloud's main phase
// writes before sshd starts (sshd only generates keys that are missing).
func renderUserData(in input) ([]byte, error) {
	loginShell := "/bin/sh"
	if in.shell == shellBash {
		loginShell = "/bin/bash"
	}
	doc := cloudConfig{
		Users: []user{{
			Name:              in.username,
			Shell:             loginShell,
			LockPasswd:        true,
			SSHAuthorizedKeys: []string{in.authorizedKey},
		}},
		WriteFiles: []writeFile{
			{
				Path:        "/etc/ssh/" + in.hostKeyFile,
				Permissions: "0600",
				Owner:       "root:root",
				// base64 keeps the PEM's line structure intact through
				// tiny-cloud's shell-based YAML reader.
				Encoding: "b64",
				Content:  base64.StdEncoding.EncodeToString(in.hostPrivate),
			},
			{
				Path:        "/etc/ssh/" + in.hostKeyFile + ".pub",
				Permissions: "0644",
				Owner:       "root:root",
				Content:     in.hostPublic + "\n",
			},
		},
		Packages: in.packages,
	}
	body, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("marshal user-data: %w", err)
	}
	return append([]byte("#cloud-config\n"), body...), nil
}
