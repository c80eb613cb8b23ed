package osutil_test

import (
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil/osutiltest"
)

func TestHasControl(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"", false},
		{"plain ASCII with symbols !#$%&'()*+,-./:;<=>?@[]^_`{|}~", false},
		{"Zürich ő 日本", false},
		{"\t", true},
		{"\n", true},
		{"\x00", true},
		{"\x7f", true},
		{"\u0085", true},
		{"\u2028", true},
		{"\u2029", true},
		{"\xff", true},
	} {
		if got := osutil.HasControl(tc.in); got != tc.want {
			t.Errorf("HasControl(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestTruncate(t *testing.T) {
	long := strings.Repeat("é", 40) // 80 bytes
	got := osutil.Truncate(long)
	if !strings.HasSuffix(got, "...") || len(got) > 64+3 || !strings.HasPrefix(long, strings.TrimSuffix(got, "...")) {
		t.Errorf("Truncate = %q: want at most 64 bytes of the value, cut at a character boundary, then ...", got)
	}
	if got := osutil.Truncate("short"); got != "short" {
		t.Errorf("Truncate(short) = %q", got)
	}
}

func TestTimezone(t *testing.T) {
	for _, tc := range []struct {
		tz string
		ok bool
	}{
		{"", true},
		{"UTC", true},
		{"Europe/Zurich", true},
		{"America/Argentina/Buenos_Aires", true},
		{"Etc/GMT-14", true},
		{"Local", false},
		{"posixrules", false},
		{"Europe/Atlantis", false},
		{"europe/zurich", false},
		{"Europe/Zurich ", false},
		{"/usr/share/zoneinfo/UTC", false},
		{"Europe/../UTC", false},
		{"A/B/C/D", false},
	} {
		err := osutil.Timezone(tc.tz)
		if (err == nil) != tc.ok {
			t.Errorf("Timezone(%q) = %v, want ok %v", tc.tz, err, tc.ok)
		}
		if err != nil && (!pluginapi.IsInvalidInput(err) || !strings.HasPrefix(pluginapi.ErrorMessage(err), "timezone ")) {
			t.Errorf("Timezone(%q) error %v: want InvalidArgument naming timezone", tc.tz, err)
		}
	}
}

func TestCheckOptions(t *testing.T) {
	allowed := []string{"groups", "sudo"}
	if err := osutil.CheckOptions(map[string]string{"sudo": "x", "groups": "y"}, allowed); err != nil {
		t.Errorf("allowed keys refused: %v", err)
	}
	// The first unknown key in sorted order is named, every time.
	opts := map[string]string{"zeta": "1", "alpha": "2", "sudo": "true", "mid": "3"}
	for range 20 {
		err := osutil.CheckOptions(opts, allowed)
		if msg := pluginapi.ErrorMessage(err); !strings.HasPrefix(msg, `options "alpha": `) || !strings.Contains(msg, "allowed: groups, sudo") {
			t.Fatalf("error %q: want options \"alpha\" named first, with the allowed keys", msg)
		}
	}
}

func TestBoolOption(t *testing.T) {
	for _, tc := range []struct {
		opts    map[string]string
		def     bool
		want    bool
		wantErr bool
	}{
		{nil, true, true, false},
		{nil, false, false, false},
		{map[string]string{"k": "true"}, false, true, false},
		{map[string]string{"k": "false"}, true, false, false},
		{map[string]string{"k": "True"}, true, false, true},
		{map[string]string{"k": "1"}, true, false, true},
		{map[string]string{"k": ""}, true, false, true},
	} {
		got, err := osutil.BoolOption(tc.opts, "k", tc.def)
		if (err != nil) != tc.wantErr || (err == nil && got != tc.want) {
			t.Errorf("BoolOption(%v, def %v) = %v, %v; want %v, error %v", tc.opts, tc.def, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.HasPrefix(pluginapi.ErrorMessage(err), "options.k ") {
			t.Errorf("error %q does not name options.k", pluginapi.ErrorMessage(err))
		}
	}
}

func TestListOption(t *testing.T) {
	for in, want := range map[string]string{
		"":                 "",
		"a":                "a",
		" a , b,,a, c ":    "a|b|c",
		"Remote Desktop U": "Remote Desktop U",
	} {
		if got := strings.Join(osutil.ListOption(map[string]string{"g": in}, "g"), "|"); got != want {
			t.Errorf("ListOption(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestInstanceID(t *testing.T) {
	for id, ok := range map[string]bool{
		"":                                     true,
		"runner-12-3456-x7k2p9qz":              true,
		"5f0c2a4e-8d1b-4c7a-9e3f-2b6d8a1c0e9f": true,
		"i-0123:abc.def_g":                     true,
		strings.Repeat("i", 253):               true,
		strings.Repeat("i", 254):               false,
		"-leading":                             false,
		"a b":                                  false,
		"a/b":                                  false,
		"a\nb":                                 false,
	} {
		if err := osutil.InstanceID(id); (err == nil) != ok {
			t.Errorf("InstanceID(%q) = %v, want ok %v", id, err, ok)
		}
	}
}

func TestParseHostKeyCanonicalizes(t *testing.T) {
	k := osutiltest.NewKeyPair(t)
	hk := k.HostKey()
	hk.PublicKey += " a comment"
	hk.PrivateKey = append([]byte("\n"), append(hk.PrivateKey, "\n\n"...)...)
	got, err := osutil.ParseHostKey(hk)
	if err != nil {
		t.Fatalf("ParseHostKey: %v", err)
	}
	if got.Public != k.Public {
		t.Errorf("Public = %q, want %q (no comment)", got.Public, k.Public)
	}
	if string(got.PrivatePEM) != string(k.PrivatePEM) {
		t.Errorf("PrivatePEM is not the key re-armoured as one PEM block")
	}
	if got.Type != "ssh-ed25519" {
		t.Errorf("Type = %q", got.Type)
	}
}

func TestAuthorizedKey(t *testing.T) {
	k := osutiltest.NewKeyPair(t)
	line, pub, err := osutil.AuthorizedKey("authorized_key", "  "+k.Public+" comment with spaces ")
	if err != nil {
		t.Fatalf("AuthorizedKey: %v", err)
	}
	if line != k.Public || osutil.KeyLine(pub) != k.Public {
		t.Errorf("AuthorizedKey = %q, want %q", line, k.Public)
	}
	_, _, err = osutil.AuthorizedKey("authorized_key", string(k.PrivatePEM))
	if msg := pluginapi.ErrorMessage(err); err == nil || strings.Contains(msg, "BEGIN") || !strings.Contains(msg, osutil.Redacted) {
		t.Errorf("a private key passed as authorized_key: error %q, want it refused without quoting it", msg)
	}
}
