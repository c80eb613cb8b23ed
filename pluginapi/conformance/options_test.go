package conformance

import (
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

func TestOptionsValidate(t *testing.T) {
	target := func(*testing.T) *pluginv1.Target { return &pluginv1.Target{} }
	tests := []struct {
		name    string
		err     error
		wantErr string
	}{
		{name: "os zero value", err: OSOptions{}.validate()},
		{name: "os negative timeout", err: OSOptions{CallTimeout: -time.Second}.validate(), wantErr: "OSOptions.CallTimeout -1s: must not be negative"},
		{name: "transport minimal", err: TransportOptions{Target: target}.validate()},
		{name: "transport without target", err: TransportOptions{}.validate(), wantErr: "TransportOptions.Target is nil"},
		{name: "transport negative timeout", err: TransportOptions{Target: target, WrongHostKeyTimeout: -1}.validate(), wantErr: "TransportOptions.WrongHostKeyTimeout -1ns: must not be negative"},
		{name: "alive without id", err: TransportOptions{Target: target, Commands: Commands{Alive: "Get-Process -Id 1"}}.validate(), wantErr: `TransportOptions.Commands.Alive "Get-Process -Id 1": must contain the placeholder {id}`},
		{name: "read file without path", err: TransportOptions{Target: target, Commands: Commands{ReadFile: "type x"}}.validate(), wantErr: `TransportOptions.Commands.ReadFile "type x": must contain the placeholder {path}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			switch {
			case tt.wantErr == "" && tt.err != nil:
				t.Errorf("validate() = %v, want nil", tt.err)
			case tt.wantErr != "" && (tt.err == nil || !strings.Contains(tt.err.Error(), tt.wantErr)):
				t.Errorf("validate() = %v, want an error containing %q", tt.err, tt.wantErr)
			}
		})
	}
}

func TestCommandsDefaults(t *testing.T) {
	got := Commands{Cat: "Get-Content -Raw -"}.withDefaults()
	if got.Cat != "Get-Content -Raw -" {
		t.Errorf("a set command was replaced: Cat = %q", got.Cat)
	}
	for name, v := range map[string]string{"OutErr": got.OutErr, "Env": got.Env, "Block": got.Block, "Alive": got.Alive, "ReadFile": got.ReadFile} {
		if v == "" {
			t.Errorf("Commands.%s has no default", name)
		}
	}
}

func TestSemver(t *testing.T) {
	for v, want := range map[string]bool{
		"1.2.0": true, "0.1.0": true, "1.0.0-rc.1": true, "1.0.0+build.5": true, "10.20.30-alpha.1+sha.1234": true,
		"v1.2.0": false, "1.2": false, "01.2.3": false, "1.2.3-": false, "": false, "1.2.3\n": false,
	} {
		if got := isSemver(v); got != want {
			t.Errorf("isSemver(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestMaskCryptHashes(t *testing.T) {
	k := &osKit{}
	a := []byte("passwd: $6$abcdEFGH$0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJ./\nname: runner\n")
	b := []byte("passwd: $6$zyxwVUTS$ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqponmlkjihgfe./\nname: runner\n")
	if string(k.mask(a)) != string(k.mask(b)) {
		t.Errorf("two SHA-512 crypt hashes did not mask to the same text: %q vs %q", k.mask(a), k.mask(b))
	}
	c := []byte("passwd: $6$abcdEFGH$0123\nname: admin\n")
	if string(k.mask(a)) == string(k.mask(c)) {
		t.Error("masking hid a difference outside the hash")
	}
}

func TestSecretsFindAndRedact(t *testing.T) {
	var s secrets
	pem := "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDsecretsecretsecretsecretsecretsecretAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
	s.add("host private key", []byte(pem))
	s.add("password", []byte("Cf-hunter2-hunter2"))
	s.add("empty", nil)
	tests := []struct {
		text string
		want []string
	}{
		{text: "nothing here", want: nil},
		{text: "login with Cf-hunter2-hunter2 failed", want: []string{"password"}},
		// One line of the key, re-wrapped by a logger, is a leak too.
		{text: "key=| QyNTUxOQAAACDsecretsecretsecretsecretsecretsecretAAAA", want: []string{"host private key"}},
	}
	for _, tt := range tests {
		if got := s.find(tt.text); strings.Join(got, ",") != strings.Join(tt.want, ",") {
			t.Errorf("find(%q) = %v, want %v", tt.text, got, tt.want)
		}
		if red := s.redact(tt.text); len(tt.want) > 0 && s.find(red) != nil {
			t.Errorf("redact(%q) = %q still holds a secret", tt.text, red)
		}
	}
}

func TestNewPasswordHonoursThePluginLimit(t *testing.T) {
	for _, tt := range []struct {
		max  uint32
		want int
	}{{0, pluginapi.DefaultPasswordLength}, {20, 20}, {64, pluginapi.DefaultPasswordLength}} {
		p, err := newPassword(tt.max)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != tt.want {
			t.Errorf("newPassword(%d) has %d characters, want %d", tt.max, len(p), tt.want)
		}
	}
}
