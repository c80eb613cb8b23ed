package main

import (
	"os/user"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/conformance"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/transport-ssh/sshtransport"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// TestConformance builds the plugin binary and runs the contract kit
// against it, the way the core launches it, with a real OpenSSH sshd as
// the guest. The login is a throwaway non-root account, like the CI user
// in a guest image (creating it needs root, as CI runs).
func TestConformance(t *testing.T) {
	bin := conformance.Build(t, ".", sshtransport.Name)
	tests := []struct {
		name     string
		password bool
	}{
		{name: "key login"},
		{name: "password login", password: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			account := sshd.CreateUserForTest(t)
			home, err := user.Lookup(account.Name)
			if err != nil {
				t.Fatal(err)
			}
			key, err := sshd.NewKeyPair()
			if err != nil {
				t.Fatal(err)
			}
			srv := sshd.StartForTest(t, sshd.Options{
				User:           account.Name,
				AuthorizedKeys: []string{key.AuthorizedKey},
				PasswordAuth:   tt.password,
			})
			target := &pluginv1.Target{
				Host:     srv.Host(),
				Port:     uint32(srv.Port()),
				Username: account.Name,
				HostKeys: []string{srv.HostPublicKey()},
			}
			if tt.password {
				target.Password = account.Password
			} else {
				target.PrivateKey = key.PrivateKeyPEM
			}
			conformance.TestTransportPlugin(t, bin, conformance.TransportOptions{
				Target:    func(*testing.T) *pluginv1.Target { return target },
				UploadDir: home.HomeDir,
			})
		})
	}
}
