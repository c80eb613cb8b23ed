package credentials

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

func TestGenerate(t *testing.T) {
	tests := []struct {
		name           string
		passwordLength int
	}{
		{"keys only", 0},
		{"keys and password", PasswordLength},
		{"keys and a Cloudbase-Init sized password", 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Generate(nil, tt.passwordLength, "runner")
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
			if len(s.Password) != tt.passwordLength {
				t.Errorf("password has %d characters, want %d", len(s.Password), tt.passwordLength)
			}
		})
	}
}

func TestGenerateIsFreshEachTime(t *testing.T) {
	a, err := Generate(nil, PasswordLength, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(nil, PasswordLength, "")
	if err != nil {
		t.Fatal(err)
	}
	if a.Client.Public == b.Client.Public || a.Host.Public == b.Host.Public || a.Password == b.Password {
		t.Error("two Generate calls returned a shared secret")
	}
}

func TestNewPasswordMeetsComplexity(t *testing.T) {
	for i := range 200 {
		p, err := NewPassword(nil, PasswordLength)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) != PasswordLength {
			t.Fatalf("password %d has length %d", i, len(p))
		}
		for _, class := range pluginapi.PasswordClasses() {
			if !strings.ContainsAny(p, class) {
				t.Fatalf("password %d lacks a character of %q", i, class)
			}
		}
		if strings.Trim(p, pluginapi.PasswordAlphabet) != "" {
			t.Fatalf("password %d has characters outside the alphabet", i)
		}
	}
}

func TestPasswordLengthFor(t *testing.T) {
	tests := []struct {
		name    string
		wants   bool
		max     uint32
		want    int
		wantErr bool
	}{
		{"no password wanted", false, 20, 0, false},
		{"no limit", true, 0, PasswordLength, false},
		{"limit above default", true, 127, PasswordLength, false},
		{"Cloudbase-Init limit", true, 20, 20, false},
		{"limit at the minimum", true, MinPasswordLength, MinPasswordLength, false},
		{"limit too low to be safe", true, MinPasswordLength - 1, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PasswordLengthFor(tt.wants, tt.max)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("PasswordLengthFor(%t, %d) = %d, %v; want %d, error %t", tt.wants, tt.max, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestNewPasswordRefusesTooShort(t *testing.T) {
	if _, err := NewPassword(nil, 3); err == nil {
		t.Fatal("NewPassword(3) succeeded; 3 characters cannot hold every class")
	}
}

func TestFormattingNeverPrintsSecrets(t *testing.T) {
	s, err := Generate(nil, PasswordLength, "")
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

// TestGenerateAvoidsTheUsername feeds Generate random bytes for the two
// keys, then bytes that make the first password contain the username: the
// password returned must be a later, clean one.
func TestGenerateAvoidsTheUsername(t *testing.T) {
	first := "Abc2-" + strings.Repeat("x", MinPasswordLength-5)
	var crafted []byte
	for _, c := range []byte(first) {
		crafted = append(crafted, byte(strings.IndexByte(pluginapi.PasswordAlphabet, c)))
	}
	keySeeds := make([]byte, 2*ed25519.SeedSize)
	if _, err := rand.Read(keySeeds); err != nil {
		t.Fatal(err)
	}
	r := io.MultiReader(bytes.NewReader(keySeeds), bytes.NewReader(crafted), rand.Reader)
	s, err := Generate(r, MinPasswordLength, "aBC")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(s.Password), "abc") {
		t.Fatalf("password contains the username: %s", s.Password)
	}
	// Control: without a username the crafted password is the one returned.
	r = io.MultiReader(bytes.NewReader(keySeeds), bytes.NewReader(crafted), rand.Reader)
	if s, err = Generate(r, MinPasswordLength, ""); err != nil || s.Password != first {
		t.Fatalf("crafted bytes did not produce the crafted password (%v): the test no longer steers the generator", err)
	}
}

func TestContainsFold(t *testing.T) {
	tests := []struct {
		password, name string
		want           bool
	}{
		{"xxRunnerxx", "runner", true},
		{"xxRUNNERxx", "runner", true},
		{"xxabxx", "ab", false}, // Windows ignores names shorter than 3
		{"xxabcxx", "", false},
		{"xxabcxx", "abd", false},
	}
	for _, tt := range tests {
		if got := containsFold(tt.password, tt.name); got != tt.want {
			t.Errorf("containsFold(%q, %q) = %t, want %t", tt.password, tt.name, got, tt.want)
		}
	}
}
