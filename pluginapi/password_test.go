package pluginapi

import (
	"strings"
	"testing"
)

func TestGeneratePasswordShape(t *testing.T) {
	for _, length := range []int{4, 16, 20, DefaultPasswordLength} {
		for range 100 {
			p, err := GeneratePassword(nil, length)
			if err != nil {
				t.Fatal(err)
			}
			if len(p) != length {
				t.Fatalf("password has %d characters, want %d", len(p), length)
			}
			for _, class := range PasswordClasses() {
				if !strings.ContainsAny(p, class) {
					t.Fatalf("password lacks a character of %q", class)
				}
			}
			if strings.Trim(p, PasswordAlphabet) != "" {
				t.Fatalf("password has characters outside the alphabet")
			}
		}
	}
}

func TestGeneratePasswordRefusesTooShort(t *testing.T) {
	if _, err := GeneratePassword(nil, len(PasswordClasses())-1); err == nil {
		t.Fatal("a password too short to hold every class was generated")
	}
}
