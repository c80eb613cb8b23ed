package cloudbase_test

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf16"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/windows-cloudbase/cloudbase"
)

// decodeCommand reverses -EncodedCommand: base64, then UTF-16LE.
func decodeCommand(t *testing.T, enc string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(b)%2 != 0 {
		t.Fatalf("%q is not base64 of UTF-16LE: %v", enc, err)
	}
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return string(utf16.Decode(units))
}

func TestEncodeCommand(t *testing.T) {
	cases := []struct{ name, in, want string }{
		// The example of Microsoft's about_Pwsh / powershell.exe -? help.
		{"documented example", `dir "c:\program files" `, "ZABpAHIAIAAiAGMAOgBcAHAAcgBvAGcAcgBhAG0AIABmAGkAbABlAHMAIgAgAA=="},
		{"empty", "", ""},
		// U+1F600 is the surrogate pair D83D DE00: bytes 3D D8 00 DE.
		{"outside the BMP (surrogate pair)", "\U0001F600", "PdgA3g=="},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := cloudbase.EncodeCommand(tc.in)
			if got != tc.want {
				t.Errorf("EncodeCommand(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if back := decodeCommand(t, got); back != tc.in {
				t.Errorf("decodes to %q, want %q", back, tc.in)
			}
		})
	}
}

func TestRecipe(t *testing.T) {
	for _, shell := range []string{"pwsh", "powershell"} {
		t.Run(shell, func(t *testing.T) {
			req := validRequest(t)
			req.Options = map[string]string{"shell": shell}
			resp, err := render(t, req)
			if err != nil {
				t.Fatal(err)
			}
			r := resp.GetRecipe()
			want := &pluginv1.RunRecipe{
				Shell:           shell,
				ScriptExtension: ".ps1",
				TempDir:         "C:/Windows/Temp",
				PathSeparator:   "/",
				Command:         shell + " -NoProfile -NonInteractive -ExecutionPolicy Bypass -File {script}",
			}
			got := &pluginv1.RunRecipe{
				Shell: r.GetShell(), ScriptExtension: r.GetScriptExtension(), TempDir: r.GetTempDir(),
				PathSeparator: r.GetPathSeparator(), Command: r.GetCommand(),
			}
			if got.String() != want.String() {
				t.Errorf("recipe = %v, want %v", got, want)
			}
			if n := strings.Count(r.GetCommand(), "{script}"); n != 1 {
				t.Errorf("command has %d {script} placeholders, want 1", n)
			}
			prefix := shell + " -NoProfile -NonInteractive -EncodedCommand "
			enc, ok := strings.CutPrefix(r.GetReadinessCommand(), prefix)
			if !ok {
				t.Fatalf("readiness command %q does not start with %q", r.GetReadinessCommand(), prefix)
			}
			if script := decodeCommand(t, enc); script != cloudbase.ReadinessScript {
				t.Errorf("the readiness command runs\n%s\nwant\n%s", script, cloudbase.ReadinessScript)
			}
			// cmd.exe, a possible OpenSSH default shell, takes at most 8191
			// characters, and neither it nor PowerShell may need quoting.
			if n := len(r.GetReadinessCommand()); n > 8191 {
				t.Errorf("readiness command has %d characters; cmd.exe takes 8191", n)
			}
			if strings.ContainsAny(r.GetReadinessCommand(), "\"'%^&|<>()$`;") {
				t.Errorf("readiness command %q holds characters cmd.exe or PowerShell would interpret", r.GetReadinessCommand())
			}
		})
	}
}

func TestReadinessScriptWaitsForThisBootsRun(t *testing.T) {
	for _, s := range []string{
		"Name='cloudbase-init'",  // the service Cloudbase-Init's installer registers
		"$s.State -eq 'Stopped'", // stop_service_on_exit: it stops itself when done
		"$s.ExitCode -ne 1077",   // ERROR_SERVICE_NEVER_STARTED: not yet run this boot
		"exit 1",                 // no service: fail, do not wait forever
		"Start-Sleep -Seconds 2", // otherwise poll
		"$ErrorActionPreference = 'Stop'",
	} {
		if !strings.Contains(cloudbase.ReadinessScript, s) {
			t.Errorf("ReadinessScript lacks %q", s)
		}
	}
}
