package standin

import (
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

func mustKey(t *testing.T) sshd.KeyPair {
	t.Helper()
	k, err := sshd.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// render builds a cloud-config document as data, like the OS plugin does.
func render(t *testing.T, doc map[string]any) []byte {
	t.Helper()
	b, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte("#cloud-config\n"), b...)
}

func TestParseUserData(t *testing.T) {
	client, host := mustKey(t), mustKey(t)
	user := func(u map[string]any) map[string]any {
		return map[string]any{
			"users":    []any{u},
			"ssh_keys": map[string]any{"ed25519_private": string(host.PrivateKeyPEM), "ed25519_public": host.AuthorizedKey},
		}
	}
	valid := map[string]any{"name": "ci", "ssh_authorized_keys": []string{client.AuthorizedKey}}

	tests := []struct {
		name    string
		data    []byte
		want    guestConfig
		wantErr string
	}{
		{
			name: "the shape the linux-cloudinit plugin renders",
			data: render(t, user(valid)),
			want: guestConfig{User: "ci", AuthorizedKeys: []string{client.AuthorizedKey}, HostKey: host.PrivateKeyPEM, HostPublicKey: host.AuthorizedKey},
		},
		{
			name: "no host key: the guest would make a random one",
			data: render(t, map[string]any{"users": []any{valid}}),
			want: guestConfig{User: "ci", AuthorizedKeys: []string{client.AuthorizedKey}},
		},
		{
			name: "CRLF header is accepted like cloud-init does",
			data: append([]byte("#cloud-config\r\n"), render(t, user(valid))[len("#cloud-config\n"):]...),
			want: guestConfig{User: "ci", AuthorizedKeys: []string{client.AuthorizedKey}, HostKey: host.PrivateKeyPEM, HostPublicKey: host.AuthorizedKey},
		},
		{name: "missing header", data: []byte("users:\n- name: ci\n"), wantErr: `must start with the line "#cloud-config"`},
		{name: "shell script user-data", data: []byte("#!/bin/sh\necho hi\n"), wantErr: `must start with the line "#cloud-config"`},
		{name: "not YAML", data: []byte("#cloud-config\nusers: [\n"), wantErr: "not a YAML cloud-config document"},
		{name: "no users", data: render(t, map[string]any{"hostname": "x"}), wantErr: "users: must list at least one user"},
		{name: "distro default user only", data: render(t, map[string]any{"users": []any{"default"}}), wantErr: "users[0]: must be a mapping"},
		{name: "user without name", data: render(t, user(map[string]any{"ssh_authorized_keys": []string{client.AuthorizedKey}})), wantErr: "users[0].name: must be set"},
		{name: "user name with newline", data: render(t, user(map[string]any{"name": "ci\nroot", "ssh_authorized_keys": []string{client.AuthorizedKey}})), wantErr: "must not contain NUL, newlines"},
		{name: "user without keys", data: render(t, user(map[string]any{"name": "ci"})), wantErr: "users[0].ssh_authorized_keys: must list at least one key"},
		{name: "key that is not a key", data: render(t, user(map[string]any{"name": "ci", "ssh_authorized_keys": []string{"ssh-ed25519 notbase64"}})), wantErr: "ssh_authorized_keys[0]: must be an authorized_keys line"},
		{name: "two keys in one entry", data: render(t, user(map[string]any{"name": "ci", "ssh_authorized_keys": []string{client.AuthorizedKey + "\n" + host.AuthorizedKey}})), wantErr: "ssh_authorized_keys[0]: must be a single line"},
		{
			name:    "host key that is not PEM",
			data:    render(t, map[string]any{"users": []any{valid}, "ssh_keys": map[string]any{"ed25519_private": "SECRET-NOT-A-KEY"}}),
			wantErr: "ssh_keys.ed25519_private: must be an unencrypted private key",
		},
		{
			name:    "host key of the wrong type",
			data:    render(t, map[string]any{"users": []any{valid}, "ssh_keys": map[string]any{"ed25519_private": 42}}),
			wantErr: "ssh_keys.ed25519_private: must be a non-empty PEM string",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseUserData(tt.data)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("parseUserData accepted it: %+v", got)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("error %q does not contain %q", err, tt.wantErr)
				}
				// Errors never quote key material.
				for _, secret := range []string{"SECRET-NOT-A-KEY", "PRIVATE KEY", string(host.PrivateKeyPEM)} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error quotes secret material %q: %v", secret, err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.User != tt.want.User || strings.Join(got.AuthorizedKeys, "|") != strings.Join(tt.want.AuthorizedKeys, "|") ||
				string(got.HostKey) != string(tt.want.HostKey) || got.HostPublicKey != tt.want.HostPublicKey {
				t.Errorf("got user %q keys %q hostkey %d bytes pub %q; want user %q keys %q hostkey %d bytes pub %q",
					got.User, got.AuthorizedKeys, len(got.HostKey), got.HostPublicKey,
					tt.want.User, tt.want.AuthorizedKeys, len(tt.want.HostKey), tt.want.HostPublicKey)
			}
		})
	}
}

func TestParseOSRelease(t *testing.T) {
	got := parseOSRelease([]byte("# comment\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID='12'\nbroken\n"))
	want := map[string]string{"PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)", "ID": "debian", "VERSION_ID": "12"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
