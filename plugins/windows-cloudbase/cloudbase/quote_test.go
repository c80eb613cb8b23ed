package cloudbase_test

import (
	"errors"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/windows-cloudbase/cloudbase"
)

func TestQuoteLiteral(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{
		{"empty", "", "''"},
		{"plain", "runner", "'runner'"},
		{"apostrophe", "o'brien", "'o''brien'"},
		{"only apostrophes", "''", "''''''"},
		{"left single quotation mark", "a\u2018b", "'a\u2018\u2018b'"},
		{"right single quotation mark", "a\u2019b", "'a\u2019\u2019b'"},
		{"single low-9 quotation mark", "a\u201ab", "'a\u201a\u201ab'"},
		{"single high-reversed-9 quotation mark", "a\u201bb", "'a\u201b\u201bb'"},
		{"quote at the end", "x'", "'x'''"},
		{"mixed quotes in a row", "'\u2019", "'''\u2019\u2019'"},
		{"expansion syntax stays literal", "$env:PATH $(Get-Date) `n @x", "'$env:PATH $(Get-Date) `n @x'"},
		{"double quotes", `say "hi"`, `'say "hi"'`},
		{"statement separators", "a; b | c & d", "'a; b | c & d'"},
		{"double quotation marks stay single", "\u201chi\u201d", "'\u201chi\u201d'"},
		{"non-ASCII letters", "Zürich", "'Zürich'"},
		{"backslashes", `C:\Windows\`, `'C:\Windows\'`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cloudbase.QuoteLiteral(tc.in)
			if err != nil {
				t.Fatalf("QuoteLiteral(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("QuoteLiteral(%q) = %q, want %q", tc.in, got, tc.want)
			}
			// PowerShell's tokenizer reads it back as the input, and the
			// literal ends exactly at the end.
			back, rest, err := unquotePS(got)
			if err != nil || rest != "" || back != tc.in {
				t.Errorf("PowerShell reads %q as %q, rest %q, err %v; want %q", got, back, rest, err, tc.in)
			}
		})
	}
}

func TestQuoteLiteralRefusesControlCharacters(t *testing.T) {
	for name, in := range map[string]string{
		"newline":             "a\nb",
		"carriage return":     "a\rb",
		"tab":                 "a\tb",
		"nul":                 "a\x00b",
		"escape":              "a\x1bb",
		"delete":              "a\x7fb",
		"next line (C1)":      "a\u0085b",
		"line separator":      "a\u2028b",
		"paragraph separator": "a\u2029b",
		"invalid UTF-8":       "a\xffb",
	} {
		t.Run(name, func(t *testing.T) {
			got, err := cloudbase.QuoteLiteral(in)
			if !errors.Is(err, cloudbase.ErrControlCharacter) {
				t.Errorf("QuoteLiteral(%q) = %q, %v; want ErrControlCharacter", in, got, err)
			}
		})
	}
}

// FuzzQuoteLiteral checks that any accepted value reads back as itself
// and that nothing follows the literal.
func FuzzQuoteLiteral(f *testing.F) {
	for _, s := range []string{"", "o'brien", "\u2018\u2019\u201a\u201b", "'; Remove-Item C:\\ #", "a\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		lit, err := cloudbase.QuoteLiteral(in)
		if err != nil {
			if !errors.Is(err, cloudbase.ErrControlCharacter) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		back, rest, err := unquotePS(lit)
		if err != nil || rest != "" || back != in {
			t.Fatalf("QuoteLiteral(%q) = %q reads back as %q, rest %q, err %v", in, lit, back, rest, err)
		}
	})
}
