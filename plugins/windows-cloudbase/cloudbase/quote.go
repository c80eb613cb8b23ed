package cloudbase

import (
	"errors"
	"strings"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil"
)

// ErrControlCharacter is returned by QuoteLiteral for a value that holds a
// control character, a line or paragraph separator or invalid UTF-8.
var ErrControlCharacter = errors.New("a PowerShell literal must not hold control characters, line separators or invalid UTF-8")

// isSingleQuote reports the characters PowerShell's tokenizer treats as a
// single quote: the ASCII apostrophe and the typographic quotes
// U+2018..U+201B.
func isSingleQuote(r rune) bool {
	switch r {
	case '\'', '\u2018', '\u2019', '\u201a', '\u201b':
		return true
	}
	return false
}

// QuoteLiteral returns s as a PowerShell verbatim (single-quoted) string
// literal: nothing inside is expanded, and each single-quote character
// (including the typographic ones PowerShell also accepts) is doubled. It
// refuses control characters, so a literal is always one line.
func QuoteLiteral(s string) (string, error) {
	if osutil.HasControl(s) {
		return "", ErrControlCharacter
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('\'')
	for _, r := range s {
		if isSingleQuote(r) {
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String(), nil
}
