package cloudbase

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"mime/multipart"
	"net/textproto"
)

// Content types of the user-data parts: Cloudbase-Init's CloudConfigPlugin
// and ShellScriptPlugin (cloudbaseinit/plugins/common/userdataplugins/).
const (
	ContentTypeCloudConfig = "text/cloud-config"
	ContentTypeShellScript = "text/x-shellscript"
)

// CloudConfigName is the file name of the cloud-config part.
const CloudConfigName = "cloud-config.yaml"

// Boundary separates the MIME parts. Its "-", "." and ":" never occur in
// base64, the only encoding of the part bodies, so no content can end a part
// early; a fixed boundary also makes the output deterministic.
const Boundary = "gitlab-runner-kubevirt.windows-cloudbase:part"

// AdministratorsGroup is the group the job user joins by name in the
// cloud-config part (the PowerShell part adds it by SID as well, for
// localized Windows).
const AdministratorsGroup = "Administrators"

// cloudConfig is the cloud-config part. Keys are the documented
// Cloudbase-Init cloud-config plugins (doc/source/userdata.rst, "Cloud
// config"); they run in its fixed order: set_timezone, set_hostname, users.
type cloudConfig struct {
	SetTimezone string `json:"set_timezone,omitempty"`
	// SetHostname may make Cloudbase-Init reboot after the cloud-config
	// part; the whole user-data then runs again on the next boot.
	SetHostname string `json:"set_hostname,omitempty"`
	Users       []user `json:"users"`
}

// user is one entry of users (cloudconfigplugins/users.py).
type user struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
	// Passwd is the plaintext password: on Windows Cloudbase-Init sets it
	// as is (at most MaxPassword characters).
	Passwd string `json:"passwd"`
	// SSHAuthorizedKeys go to the user's ~/.ssh/authorized_keys, which
	// Windows OpenSSH reads for users outside Administrators.
	SSHAuthorizedKeys []string `json:"ssh_authorized_keys"`
}

// marshal renders the cloud-config part: the #cloud-config line and JSON,
// which YAML loaders read as YAML with every string double-quoted.
func (c *cloudConfig) marshal() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteString("#cloud-config\n")
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // <, > and & are plain characters in YAML
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("marshal cloud-config: %w", err)
	}
	return buf.Bytes(), nil
}

// part is one MIME part of the user-data.
type part struct {
	contentType string
	charset     string
	filename    string
	body        []byte
}

// multipartUserData joins parts into a MIME multipart/mixed document.
// The top-level header block ends with "\n\n": Cloudbase-Init takes the
// text before the first "\n\n" as the headers and looks for
// "Content-Type: multipart" there.
func multipartUserData(parts []part) ([]byte, error) {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "Content-Type: %s\nMIME-Version: 1.0\n\n",
		mime.FormatMediaType("multipart/mixed", map[string]string{"boundary": Boundary}))
	w := multipart.NewWriter(&buf)
	if err := w.SetBoundary(Boundary); err != nil {
		return nil, fmt.Errorf("mime boundary: %w", err)
	}
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", mime.FormatMediaType(p.contentType, map[string]string{"charset": p.charset}))
		h.Set("Content-Transfer-Encoding", "base64")
		h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": p.filename}))
		pw, err := w.CreatePart(h)
		if err != nil {
			return nil, fmt.Errorf("mime part %s: %w", p.filename, err)
		}
		if _, err := pw.Write(base64Lines(p.body)); err != nil {
			return nil, fmt.Errorf("mime part %s: %w", p.filename, err)
		}
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("mime: %w", err)
	}
	return buf.Bytes(), nil
}

// base64Lines encodes b in base64 with CRLF line breaks every 76
// characters, as MIME's base64 transfer encoding wants (RFC 2045, 6.8).
func base64Lines(b []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(b)
	var out bytes.Buffer
	for len(enc) > 76 {
		out.WriteString(enc[:76])
		out.WriteString("\r\n")
		enc = enc[76:]
	}
	out.WriteString(enc)
	out.WriteString("\r\n")
	return out.Bytes()
}
