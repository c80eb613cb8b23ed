package sshtransport

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      map[string]string
		want    func(*Options)
		wantErr string
	}{
		{name: "defaults", in: nil, want: func(*Options) {}},
		{name: "all set", in: map[string]string{
			"keepalive_interval": "250ms", "keepalive_count_max": "7", "kill_grace": "0s",
			"connect_timeout": "3s", "shell_dialect": "powershell",
		}, want: func(o *Options) {
			o.KeepaliveInterval, o.KeepaliveCountMax, o.KillGrace = 250*time.Millisecond, 7, 0
			o.ConnectTimeout, o.ShellDialect = 3*time.Second, DialectPowerShell
		}},
		{name: "unknown key", in: map[string]string{"keepalive": "5s"}, wantErr: `option "keepalive": unknown transport-ssh option; known options: connect_timeout, keepalive_count_max`},
		{name: "not a duration", in: map[string]string{"keepalive_interval": "5"}, wantErr: `option keepalive_interval "5": must be a Go duration`},
		{name: "interval too short", in: map[string]string{"keepalive_interval": "1ms"}, wantErr: "between 100ms and 1h0m0s"},
		{name: "negative grace", in: map[string]string{"kill_grace": "-1s"}, wantErr: `option kill_grace "-1s"`},
		{name: "count zero", in: map[string]string{"keepalive_count_max": "0"}, wantErr: `option keepalive_count_max "0": must be an integer between 1 and 100`},
		{name: "count not a number", in: map[string]string{"keepalive_count_max": "three"}, wantErr: `option keepalive_count_max "three"`},
		{name: "unknown dialect", in: map[string]string{"shell_dialect": "cmd"}, wantErr: `option shell_dialect "cmd": must be "posix" or "powershell"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseOptions(tt.in)
			if tt.wantErr != "" {
				if !pluginapi.IsInvalidInput(err) || !strings.Contains(pluginapi.ErrorMessage(err), tt.wantErr) {
					t.Fatalf("ParseOptions error = %v, want InvalidArgument containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := DefaultOptions()
			tt.want(&want)
			if got != want {
				t.Fatalf("ParseOptions = %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	key, hostKey := newKey(t), newKey(t)
	valid := func() *pluginv1.Target {
		return &pluginv1.Target{Host: "10.0.0.5", Port: 2222, Username: "ci", PrivateKey: key.PrivateKeyPEM, HostKeys: []string{hostKey.AuthorizedKey}}
	}
	pemBody := strings.Split(string(key.PrivateKeyPEM), "\n")[2]
	tests := []struct {
		name     string
		mutate   func(*pluginv1.Target)
		wantAddr string
		wantErr  string
	}{
		{name: "valid", mutate: func(*pluginv1.Target) {}, wantAddr: "10.0.0.5:2222"},
		{name: "default port", mutate: func(t *pluginv1.Target) { t.Port = 0 }, wantAddr: "10.0.0.5:22"},
		{name: "ipv6", mutate: func(t *pluginv1.Target) { t.Host = "fd00::5" }, wantAddr: "[fd00::5]:2222"},
		{name: "password only", mutate: func(t *pluginv1.Target) { t.PrivateKey, t.Password = nil, "pw" }, wantAddr: "10.0.0.5:2222"},
		{name: "no host", mutate: func(t *pluginv1.Target) { t.Host = "" }, wantErr: `target.host "": must be a host name or IP address`},
		{name: "host with newline", mutate: func(t *pluginv1.Target) { t.Host = "a\nb" }, wantErr: `target.host "a\nb"`},
		{name: "port too large", mutate: func(t *pluginv1.Target) { t.Port = 70000 }, wantErr: `target.port "70000": must be in 1..65535`},
		{name: "no user", mutate: func(t *pluginv1.Target) { t.Username = "" }, wantErr: `target.username ""`},
		{name: "no credentials", mutate: func(t *pluginv1.Target) { t.PrivateKey = nil }, wantErr: "a private key or a password is required"},
		{name: "garbage key", mutate: func(t *pluginv1.Target) {
			t.PrivateKey = []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
		}, wantErr: "must be an unencrypted private key in OpenSSH PEM format"},
		{name: "no host keys", mutate: func(t *pluginv1.Target) { t.HostKeys = nil }, wantErr: "at least one pinned host key is required"},
		{name: "bad host key", mutate: func(t *pluginv1.Target) { t.HostKeys = append(t.HostKeys, "ssh-ed25519 AAAA") }, wantErr: `target.host_keys[1] "ssh-ed25519 AAAA": must be one public key`},
		{name: "two host keys in one entry", mutate: func(t *pluginv1.Target) { t.HostKeys = []string{hostKey.AuthorizedKey + "\n" + key.AuthorizedKey} }, wantErr: "target.host_keys[0]"},
		{name: "unknown option", mutate: func(t *pluginv1.Target) { t.Options = map[string]string{"insecure": "yes"} }, wantErr: `option "insecure": unknown transport-ssh option`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := valid()
			tt.mutate(target)
			e, err := parseTarget(target)
			if tt.wantErr != "" {
				if !pluginapi.IsInvalidInput(err) || !strings.Contains(pluginapi.ErrorMessage(err), tt.wantErr) {
					t.Fatalf("parseTarget error = %v, want InvalidArgument containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), pemBody) {
					t.Fatalf("the error quotes the private key: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.addr != tt.wantAddr {
				t.Fatalf("addr = %q, want %q", e.addr, tt.wantAddr)
			}
		})
	}
}

func TestPoolKey(t *testing.T) {
	k1, k2, h1, h2 := newKey(t), newKey(t), newKey(t), newKey(t)
	base := func() *pluginv1.Target {
		return &pluginv1.Target{Host: "h", Port: 22, Username: "u", PrivateKey: k1.PrivateKeyPEM, HostKeys: []string{h1.AuthorizedKey, h2.AuthorizedKey}}
	}
	key := func(mutate func(*pluginv1.Target)) string {
		tg := base()
		mutate(tg)
		e, err := parseTarget(tg)
		if err != nil {
			t.Fatal(err)
		}
		return e.key
	}
	same := key(func(*pluginv1.Target) {})
	tests := []struct {
		name   string
		mutate func(*pluginv1.Target)
		equal  bool
	}{
		{name: "identical", mutate: func(*pluginv1.Target) {}, equal: true},
		{name: "host keys reordered", mutate: func(t *pluginv1.Target) { t.HostKeys = []string{h2.AuthorizedKey, h1.AuthorizedKey} }, equal: true},
		{name: "kill grace does not matter", mutate: func(t *pluginv1.Target) { t.Options = map[string]string{"kill_grace": "1s"} }, equal: true},
		{name: "other host", mutate: func(t *pluginv1.Target) { t.Host = "h2" }},
		{name: "other port", mutate: func(t *pluginv1.Target) { t.Port = 23 }},
		{name: "other user", mutate: func(t *pluginv1.Target) { t.Username = "v" }},
		{name: "other private key", mutate: func(t *pluginv1.Target) { t.PrivateKey = k2.PrivateKeyPEM }},
		{name: "added password", mutate: func(t *pluginv1.Target) { t.Password = "p" }},
		{name: "fewer host keys", mutate: func(t *pluginv1.Target) { t.HostKeys = t.HostKeys[:1] }},
		{name: "other keepalive", mutate: func(t *pluginv1.Target) { t.Options = map[string]string{"keepalive_interval": "1s"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := key(tt.mutate) == same; got != tt.equal {
				t.Fatalf("same pool key = %v, want %v", got, tt.equal)
			}
		})
	}
	if strings.Contains(same, "u@h") {
		t.Fatalf("pool key is not a hash: %q", same)
	}
}

func TestBuildCommand(t *testing.T) {
	tests := []struct {
		name, command, workdir, dialect, token string
		want, wantErr                          string
	}{
		{name: "no workdir", command: "make test", dialect: DialectPOSIX, want: "make test"},
		{name: "posix workdir", command: "make", workdir: "/builds/a b", dialect: DialectPOSIX, want: "cd '/builds/a b' || exit; make"},
		{name: "posix quote", command: "ls", workdir: "/x/it's", dialect: DialectPOSIX, want: `cd '/x/it'\''s' || exit; ls`},
		{name: "posix pid line", command: "ls", workdir: "/w", dialect: DialectPOSIX, token: "tok", want: `printf '%s:%s\n' 'tok' "$$" >&2; cd '/w' || exit; ls`},
		{name: "powershell workdir", command: "dir", workdir: `C:\builds\a b`, dialect: DialectPowerShell, token: "tok", want: `Set-Location -ErrorAction Stop -LiteralPath 'C:\builds\a b'; dir`},
		{name: "powershell quotes", command: "dir", workdir: "C:\\it's\u2019x", dialect: DialectPowerShell, want: "Set-Location -ErrorAction Stop -LiteralPath 'C:\\it''s\u2019\u2019x'; dir"},
		{name: "powershell no workdir", command: "dir", dialect: DialectPowerShell, token: "tok", want: "dir"},
		{name: "empty command", command: "  ", dialect: DialectPOSIX, wantErr: `command "  ": must not be empty`},
		{name: "nul in command", command: "a\x00b", dialect: DialectPOSIX, wantErr: "must not contain a NUL byte"},
		{name: "nul in workdir", command: "ls", workdir: "/a\x00", dialect: DialectPOSIX, wantErr: `workdir "/a\x00": must not contain a NUL byte`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := buildCommand(tt.command, tt.workdir, tt.dialect, tt.token)
			if tt.wantErr != "" {
				if !pluginapi.IsInvalidInput(err) || !strings.Contains(pluginapi.ErrorMessage(err), tt.wantErr) {
					t.Fatalf("buildCommand error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("buildCommand = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestPosixPrefixRealShells runs the POSIX prefix in real shells: the first
// stderr line carries the shell's pid, a failing cd ends a multi-line
// command, and the command's own exit status is kept.
func TestPosixPrefixRealShells(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, command, workdir string
		wantOut                string
		wantCode               int
	}{
		{name: "runs in workdir", command: "pwd\nexit 4", workdir: dir, wantOut: dir + "\n", wantCode: 4},
		{name: "cd failure stops every line", command: "echo one\necho two", workdir: dir + "/missing", wantOut: ""},
	}
	for _, shell := range []string{"/bin/sh", "/bin/bash"} {
		for _, tt := range tests {
			t.Run(shell+" "+tt.name, func(t *testing.T) {
				cmdline, err := buildCommand(tt.command, tt.workdir, DialectPOSIX, "tok123")
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(shell, "-c", cmdline)
				var stderr strings.Builder
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				code := 0
				var exitErr *exec.ExitError
				if errors.As(err, &exitErr) {
					code = exitErr.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				first, _, _ := strings.Cut(stderr.String(), "\n")
				if want := fmt.Sprintf("tok123:%d", cmd.Process.Pid); first != want {
					t.Fatalf("first stderr line = %q, want %q", first, want)
				}
				if string(out) != tt.wantOut {
					t.Fatalf("stdout = %q, want %q", out, tt.wantOut)
				}
				if tt.wantCode != 0 && code != tt.wantCode || tt.wantCode == 0 && code == 0 && tt.wantOut == "" {
					t.Fatalf("exit code = %d, want %d (or non-zero after a failed cd)", code, tt.wantCode)
				}
			})
		}
	}
}

func TestPidFilter(t *testing.T) {
	const token = "tok"
	tests := []struct {
		name    string
		writes  []string
		wantOut string
		wantPid int
	}{
		{name: "pid line first", writes: []string{"tok:1234\nerror 1\n"}, wantOut: "error 1\n", wantPid: 1234},
		{name: "split across writes", writes: []string{"to", "k:56", "78\n", "after"}, wantOut: "after", wantPid: 5678},
		{name: "shell noise before", writes: []string{"bashrc says hi\n", "tok:42\nx"}, wantOut: "bashrc says hi\nx", wantPid: 42},
		{name: "no pid line", writes: []string{"plain stderr\n"}, wantOut: "plain stderr\n"},
		{name: "garbage pid", writes: []string{"tok:abc\nrest"}, wantOut: "rest"},
		{name: "later token passes through", writes: []string{"tok:7\n", "tok:8\n"}, wantOut: "tok:8\n", wantPid: 7},
		{name: "too much before the pid line", writes: []string{strings.Repeat("x", maxPidScan+1), "tok:9\n"}, wantOut: strings.Repeat("x", maxPidScan+1) + "tok:9\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			f := newPidFilter(&out, token)
			for _, w := range tt.writes {
				if n, err := f.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if err := f.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.wantOut || f.Pid() != tt.wantPid {
				t.Fatalf("output %q pid %d, want %q pid %d", out.String(), f.Pid(), tt.wantOut, tt.wantPid)
			}
		})
	}
}

// TestShQuoteRealShell checks the quoting with a real /bin/sh: whatever the
// string, the shell must see it verbatim.
func TestShQuoteRealShell(t *testing.T) {
	for _, s := range []string{"", "plain", "a b", "it's", `'"'"'`, "$HOME `id` $(id)", "new\nline", `back\slash`, "*?[a]", "-n", "é ünï"} {
		out, err := exec.Command("/bin/sh", "-c", "printf '%s' "+shQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("sh printf %s = %q, %v; want %q", shQuote(s), out, err, s)
		}
	}
}

func TestValidateEnv(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{name: "ok", env: map[string]string{"CI_JOB_ID": "1", "_x": "", "A1": "with space"}},
		{name: "dash", env: map[string]string{"A-B": "1"}, wantErr: `env name "A-B": must match`},
		{name: "leading digit", env: map[string]string{"1A": "1"}, wantErr: `env name "1A"`},
		{name: "equals", env: map[string]string{"A=B": "1"}, wantErr: `env name "A=B"`},
		{name: "nul value", env: map[string]string{"SECRET": "top\x00secret"}, wantErr: `env value of "SECRET": must not contain a NUL byte (value not shown)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := validateEnv(tt.env)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !pluginapi.IsInvalidInput(err) || !strings.Contains(pluginapi.ErrorMessage(err), tt.wantErr) {
				t.Fatalf("validateEnv error = %v, want %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("the error quotes a value: %v", err)
			}
		})
	}
}

func TestNormalizeSignal(t *testing.T) {
	tests := []struct {
		in    string
		want  string
		valid bool
	}{
		{"TERM", "TERM", true}, {"sigint", "INT", true}, {" SIGKILL ", "KILL", true},
		{"USR2", "USR2", true}, {"WINCH", "WINCH", false}, {"", "", false},
	}
	for _, tt := range tests {
		got, valid := normalizeSignal(tt.in)
		if got != tt.want || valid != tt.valid {
			t.Errorf("normalizeSignal(%q) = %q, %v; want %q, %v", tt.in, got, valid, tt.want, tt.valid)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(100*time.Millisecond, time.Second)
	caps := []time.Duration{100, 200, 400, 800, 1000, 1000, 1000}
	for i, c := range caps {
		c *= time.Millisecond
		if d := b.delay(); d < c/2 || d > c {
			t.Fatalf("delay #%d = %s, want within [%s, %s]", i, d, c/2, c)
		}
	}
}

func TestHostKeyAlgorithms(t *testing.T) {
	ed := newKey(t)
	edKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(ed.AuthorizedKey))
	if err != nil {
		t.Fatal(err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := ssh.NewPublicKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		keys []ssh.PublicKey
		want []string
	}{
		{name: "ed25519", keys: []ssh.PublicKey{edKey}, want: []string{"ssh-ed25519"}},
		{name: "rsa prefers sha2", keys: []ssh.PublicKey{rsaKey, edKey, edKey}, want: []string{"rsa-sha2-512", "rsa-sha2-256", "ssh-rsa", "ssh-ed25519"}},
	}
	for _, tt := range tests {
		if got := strings.Join(hostKeyAlgorithms(tt.keys), ","); got != strings.Join(tt.want, ",") {
			t.Errorf("%s: hostKeyAlgorithms = %s, want %s", tt.name, got, strings.Join(tt.want, ","))
		}
	}
}

func TestGetInfoAndHealth(t *testing.T) {
	tests := []struct {
		name, version, want string
	}{
		{name: "default version", want: DefaultVersion},
		{name: "set version", version: "9.8.7", want: "9.8.7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := New(Config{Version: tt.version})
			defer tr.Close()
			info, err := tr.GetInfo(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if info.GetName() != "transport-ssh" || info.GetKind() != pluginv1.Kind_KIND_TRANSPORT || info.GetVersion() != tt.want {
				t.Fatalf("GetInfo = %v", info)
			}
			if got := info.GetApiVersions(); len(got) != 1 || got[0] != 1 {
				t.Fatalf("api versions = %v, want [1]", got)
			}
			if got := strings.Join(info.GetCapabilities(), ","); got != "upload,signal,keepalive,password,key" {
				t.Fatalf("capabilities = %s", got)
			}
			h, err := tr.Health(context.Background())
			if err != nil || h.GetState() != pluginv1.HealthResponse_STATE_OK {
				t.Fatalf("Health = %v, %v", h, err)
			}
		})
	}
}
