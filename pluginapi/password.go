package pluginapi

import (
	"crypto/rand"
	"fmt"
	"io"
	"math/big"
	"strings"
)

// The shape of the passwords the core sends in RenderRequest.Password to OS
// plugins with the "password" capability: DefaultPasswordLength characters
// (fewer if PluginInfo.MaxPasswordLength says so) of PasswordAlphabet, with
// at least one character of each class Windows' complexity rules count.
// The alphabet leaves out characters that need quoting in shells, YAML or
// INI files, and look-alikes (0/O, 1/l/I).
const (
	DefaultPasswordLength = 32
	passwordLower         = "abcdefghijkmnopqrstuvwxyz"
	passwordUpper         = "ABCDEFGHJKLMNPQRSTUVWXYZ"
	passwordDigit         = "23456789"
	passwordSymbol        = "-_.+=@"
	// PasswordAlphabet is every character a generated password may hold.
	PasswordAlphabet = passwordLower + passwordUpper + passwordDigit + passwordSymbol
)

// PasswordClasses returns the character classes every generated password
// holds at least one character of.
func PasswordClasses() []string {
	return []string{passwordLower, passwordUpper, passwordDigit, passwordSymbol}
}

// GeneratePassword returns length random characters of PasswordAlphabet
// from r (crypto/rand.Reader when nil), with at least one of each class.
// The core uses it for job passwords; the conformance kit uses it so plugins
// are tested with exactly what the core sends.
func GeneratePassword(r io.Reader, length int) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	classes := PasswordClasses()
	if length < len(classes) {
		return "", fmt.Errorf("password length %d: must be at least %d to hold every character class", length, len(classes))
	}
	max := big.NewInt(int64(len(PasswordAlphabet)))
	for {
		b := make([]byte, length)
		for i := range b {
			n, err := rand.Int(r, max)
			if err != nil {
				return "", fmt.Errorf("random password: %w", err)
			}
			b[i] = PasswordAlphabet[n.Int64()]
		}
		p := string(b)
		if hasEveryClass(p, classes) {
			return p, nil
		}
	}
}

func hasEveryClass(p string, classes []string) bool {
	for _, c := range classes {
		if !strings.ContainsAny(p, c) {
			return false
		}
	}
	return true
}
