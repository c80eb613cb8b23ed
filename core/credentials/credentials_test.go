package credentials

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestGenerate(t *testing.T) {
	tests := []struct {
		name         string
		withPassword bool
	}{
		{"keys only", false},
		{"keys and password", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Generate(nil, tt.withPassword)
			if err != nil {
				t.Fatalf("Generate: %v", err)
			}
			for _, kp := range []struct {
				name string
				k    KeyPair
			}{{"client", s.Client}, {"host", s.Host}} {
				if !bytes.HasPrefix(kp.k.PrivatePEM, []byte("-----BEGIN OPENSSH PRIVATE KEY-----")) {
					t.Errorf("%s private key is not OpenSSH PEM: %.40q", kp.name, kp.k.PrivatePEM)
				}
				signer, err := ssh.ParsePrivateKey(kp.k.PrivatePEM)
				if err != nil {
					t.Fatalf("%s private key does not parse: %v", kp.name, err)
				}
				pub, _, _, rest, err := ssh.ParseAuthorizedKey([]byte(kp.k.Public))
				if err != nil || len(rest) != 0 {
					t.Fatalf("%s public key %q does not parse: %v", kp.name, kp.k.Public, err)
				}
				if !bytes.Equal(pub.Marshal(), signer.PublicKey().Marshal()) {
					t.Errorf("%s public key does not match its private key", kp.name)
				}
				if kp.k.Type() != ssh.KeyAlgoED25519 {
					t.Errorf("%s key type = %q, want %q", kp.name, kp.k.Type(), ssh.KeyAlgoED25519)
				}
			}
			if s.Client.Public == s.Host.Public {
				t.Error("client and host keys are the same")
			}
			if tt.withPassword != (s.Password != "") {
				t.Errorf("password = %q with withPassword=%t", s.Password, tt.withPassword)
			}
		})
	}
}

func TestGenerateIsFreshEachTime(t *testing.T) {
	a, err := Generate(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	if a.Client.Public == b.Client.Public || a.Host.Public == b.Host.Public || a.Password == b.Password {
		t.Error("two Generate calls returned a shared secret")
	}
}

func TestNewPasswordMeetsComplexity(t *testing.T) {
	for i := range 200 {
		p, err := NewPassword(nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != PasswordLength {
			t.Fatalf("password %d has length %d", i, len(p))
		}
		for _, class := range []string{lower, upper, digit, symbol} {
			if !strings.ContainsAny(p, class) {
				t.Fatalf("password %d lacks a character of %q", i, class)
			}
		}
		if strings.Trim(p, charset) != "" {
			t.Fatalf("password %d has characters outside the alphabet", i)
		}
	}
}

func TestFormattingNeverPrintsSecrets(t *testing.T) {
	s, err := Generate(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{s, *s, s.Client, s.Host} {
			out := fmt.Sprintf(format, v)
			if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, s.Password) {
				t.Errorf("fmt %s of %T leaks a secret: %s", format, v, out)
			}
		}
	}
}
