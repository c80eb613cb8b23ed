package cloudinit_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
	"sigs.k8s.io/yaml"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil/osutiltest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/linux-cloudinit/cloudinit"
)

// validRequest is a request every test starts from: fresh keys, no
// password, hostname and instance id like the core sends.
func validRequest(t testing.TB) *pluginv1.RenderRequest {
	t.Helper()
	return &pluginv1.RenderRequest{
		Username:      "runner",
		AuthorizedKey: osutiltest.NewKeyPair(t).Public,
		HostKey:       osutiltest.NewKeyPair(t).HostKey(),
		Hostname:      "runner-12-3456",
		InstanceId:    "runner-12-3456-x7k2p9qz",
	}
}

// render calls the plugin's Render.
func render(t testing.TB, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	t.Helper()
	return cloudinit.New("").Render(t.Context(), req)
}

// validateSchema runs the real `cloud-init schema` on userData.
func validateSchema(t *testing.T, userData []byte) {
	t.Helper()
	bin := osutiltest.RequireTool(t, "cloud-init", "cloud-init")
	path := filepath.Join(t.TempDir(), "user-data")
	if err := os.WriteFile(path, userData, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "schema", "--config-file", path).CombinedOutput()
	if err != nil {
		t.Fatalf("cloud-init schema --config-file %s: %v\n%s", path, err, out)
	}
}

// parse reads user-data back: the #cloud-config header and a YAML mapping.
// Go's YAML library and PyYAML (YAML 1.1, what cloud-init loads it with)
// must read the same values: a name like "on" or "null" must stay a string.
func parse(t *testing.T, userData []byte) map[string]any {
	t.Helper()
	body, ok := bytes.CutPrefix(userData, []byte("#cloud-config\n"))
	if !ok {
		t.Fatalf("user-data does not start with the #cloud-config line: %q", firstLine(userData))
	}
	var doc map[string]any
	if err := yaml.Unmarshal(body, &doc); err != nil {
		t.Fatalf("user-data is not YAML: %v", err)
	}
	if py := osutiltest.PyYAML(t, userData); !reflect.DeepEqual(py, any(doc)) {
		t.Errorf("PyYAML reads the user-data differently from Go:\nPyYAML %v\nGo     %v", py, doc)
	}
	return doc
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return string(line)
}

// canonicalKey is a public key as "<type> <base64>".
func canonicalKey(t *testing.T, line string) string {
	t.Helper()
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		t.Fatalf("test key %q: %v", line, err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// checkDocument asserts everything the user-data must say for req.
func checkDocument(t *testing.T, req *pluginv1.RenderRequest, doc map[string]any) {
	t.Helper()
	wantKeys := []string{"disable_root", "ssh_deletekeys", "ssh_genkeytypes", "ssh_keys", "ssh_pwauth", "users"}
	host, domain, dotted := strings.Cut(req.GetHostname(), ".")
	if req.GetHostname() != "" {
		wantKeys = append(wantKeys, "hostname", "preserve_hostname")
		if dotted {
			wantKeys = append(wantKeys, "fqdn")
		}
	}
	if req.GetTimezone() != "" {
		wantKeys = append(wantKeys, "timezone")
	}
	slices.Sort(wantKeys)
	if got := slices.Sorted(maps.Keys(doc)); !slices.Equal(got, wantKeys) {
		t.Errorf("top-level keys = %v, want exactly %v", got, wantKeys)
	}
	wantTop := map[string]any{
		"disable_root":    true,
		"ssh_deletekeys":  true,
		"ssh_genkeytypes": []any{"ed25519"},
		"ssh_pwauth":      req.GetPassword() != "",
	}
	if req.GetHostname() != "" {
		wantTop["hostname"] = host
		wantTop["preserve_hostname"] = false
		if dotted {
			wantTop["fqdn"] = host + "." + domain
		}
	}
	if req.GetTimezone() != "" {
		wantTop["timezone"] = req.GetTimezone()
	}
	for k, want := range wantTop {
		if got := doc[k]; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s = %#v, want %#v", k, got, want)
		}
	}

	// The host key: exactly the request's pair.
	keys, _ := doc["ssh_keys"].(map[string]any)
	if got := slices.Sorted(maps.Keys(keys)); !slices.Equal(got, []string{"ed25519_private", "ed25519_public"}) {
		t.Errorf("ssh_keys has %v, want exactly ed25519_private and ed25519_public", got)
	}
	wantHostPub := canonicalKey(t, req.GetHostKey().GetPublicKey())
	if got := keys["ed25519_public"]; got != wantHostPub {
		t.Errorf("ssh_keys.ed25519_public = %v, want %s", got, wantHostPub)
	}
	privPEM, _ := keys["ed25519_private"].(string)
	signer, err := ssh.ParsePrivateKey([]byte(privPEM))
	if err != nil {
		t.Errorf("ssh_keys.ed25519_private does not parse: %v", err)
	} else if got := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))); got != wantHostPub {
		t.Errorf("ssh_keys.ed25519_private is the key of %s, want %s", got, wantHostPub)
	}

	// Exactly one user, the requested one.
	users, _ := doc["users"].([]any)
	if len(users) != 1 {
		t.Fatalf("users has %d entries, want exactly 1: %v", len(users), users)
	}
	u, ok := users[0].(map[string]any)
	if !ok {
		t.Fatalf("users[0] is %T, want a mapping", users[0])
	}
	wantUserKeys := []string{"lock_passwd", "name", "shell", "ssh_authorized_keys"}
	sudo := req.GetOptions()[cloudinit.OptionSudo] != "false"
	if sudo {
		wantUserKeys = append(wantUserKeys, "sudo")
	}
	if req.GetPassword() != "" {
		wantUserKeys = append(wantUserKeys, "hashed_passwd")
	}
	var wantGroups []any
	for g := range strings.SplitSeq(req.GetOptions()[cloudinit.OptionGroups], ",") {
		if g = strings.TrimSpace(g); g != "" && !slices.Contains(wantGroups, any(g)) {
			wantGroups = append(wantGroups, g)
		}
	}
	if len(wantGroups) > 0 {
		wantUserKeys = append(wantUserKeys, "groups")
	}
	slices.Sort(wantUserKeys)
	if got := slices.Sorted(maps.Keys(u)); !slices.Equal(got, wantUserKeys) {
		t.Errorf("user keys = %v, want exactly %v", got, wantUserKeys)
	}
	if u["name"] != req.GetUsername() {
		t.Errorf("user name = %#v, want %q", u["name"], req.GetUsername())
	}
	if got, want := fmt.Sprint(u["ssh_authorized_keys"]), fmt.Sprint([]any{canonicalKey(t, req.GetAuthorizedKey())}); got != want {
		t.Errorf("ssh_authorized_keys = %s, want %s", got, want)
	}
	if u["shell"] != "/bin/bash" {
		t.Errorf("shell = %#v, want /bin/bash", u["shell"])
	}
	if sudo && u["sudo"] != "ALL=(ALL) NOPASSWD:ALL" {
		t.Errorf("sudo = %#v, want ALL=(ALL) NOPASSWD:ALL", u["sudo"])
	}
	if u["lock_passwd"] != (req.GetPassword() == "") {
		t.Errorf("lock_passwd = %#v with password set %v", u["lock_passwd"], req.GetPassword() != "")
	}
	if fmt.Sprint(u["groups"]) != fmt.Sprint(nilIfEmpty(wantGroups)) {
		t.Errorf("groups = %v, want %v", u["groups"], wantGroups)
	}
	if req.GetPassword() != "" {
		hash, _ := u["hashed_passwd"].(string)
		checkHash(t, hash, req.GetPassword())
	}
}

func nilIfEmpty(s []any) any {
	if len(s) == 0 {
		return nil
	}
	return s
}

// checkHash verifies a SHA-512 crypt hash with OpenSSL's implementation.
func checkHash(t *testing.T, hash, password string) {
	t.Helper()
	parts := strings.Split(hash, "$")
	if len(parts) != 4 || parts[0] != "" || parts[1] != "6" || len(parts[2]) < 8 {
		t.Fatalf("hashed_passwd %q is not a SHA-512 crypt hash ($6$<salt>$<hash>)", hash)
	}
	bin := osutiltest.RequireTool(t, "openssl", "openssl")
	cmd := exec.Command(bin, "passwd", "-6", "-salt", parts[2], "-stdin")
	cmd.Stdin = strings.NewReader(password)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl passwd: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != hash {
		t.Errorf("hashed_passwd does not verify: OpenSSL hashes the password with that salt to a different value")
	}
}

func TestRenderValid(t *testing.T) {
	cases := []struct {
		name string
		edit func(t *testing.T, r *pluginv1.RenderRequest)
	}{
		{"as the core sends it", nil},
		{"minimal: no hostname, time zone or instance id", func(t *testing.T, r *pluginv1.RenderRequest) {
			r.Hostname, r.InstanceId = "", ""
		}},
		{"password", func(t *testing.T, r *pluginv1.RenderRequest) { r.Password = "Zq8-rT_w.Kp+2=@LmN4xY-vB7cD9eF0gH" }},
		{"password with YAML and shell syntax", func(t *testing.T, r *pluginv1.RenderRequest) {
			r.Password = `p#ss: {x} [y] 'q' "z" $HOME \n & | > ü`
		}},
		{"fully qualified hostname", func(t *testing.T, r *pluginv1.RenderRequest) { r.Hostname = "ci-42.build.example.com" }},
		{"63-character hostname label", func(t *testing.T, r *pluginv1.RenderRequest) { r.Hostname = strings.Repeat("h", 63) }},
		{"time zone", func(t *testing.T, r *pluginv1.RenderRequest) { r.Timezone = "Europe/Zurich" }},
		{"time zone with three parts", func(t *testing.T, r *pluginv1.RenderRequest) { r.Timezone = "America/Argentina/Buenos_Aires" }},
		{"time zone Etc/GMT+5", func(t *testing.T, r *pluginv1.RenderRequest) { r.Timezone = "Etc/GMT+5" }},
		{"time zone UTC", func(t *testing.T, r *pluginv1.RenderRequest) { r.Timezone = "UTC" }},
		{"32-character username", func(t *testing.T, r *pluginv1.RenderRequest) { r.Username = "a" + strings.Repeat("b", 31) }},
		{"username with _ and -", func(t *testing.T, r *pluginv1.RenderRequest) { r.Username = "_ci-runner_1" }},
		{"username YAML 1.1 reads as a boolean", func(t *testing.T, r *pluginv1.RenderRequest) { r.Username = "on" }},
		{"username YAML reads as null", func(t *testing.T, r *pluginv1.RenderRequest) { r.Username = "null" }},
		{"hostname YAML 1.1 reads as a boolean", func(t *testing.T, r *pluginv1.RenderRequest) { r.Hostname = "y" }},
		{"hostname YAML 1.1 reads as a number", func(t *testing.T, r *pluginv1.RenderRequest) { r.Hostname = "0x1f" }},
		{"password YAML 1.1 reads as a number", func(t *testing.T, r *pluginv1.RenderRequest) { r.Password = "12:30:45:00" }},
		{"sudo false", func(t *testing.T, r *pluginv1.RenderRequest) { r.Options = map[string]string{"sudo": "false"} }},
		{"sudo true", func(t *testing.T, r *pluginv1.RenderRequest) { r.Options = map[string]string{"sudo": "true"} }},
		{"groups", func(t *testing.T, r *pluginv1.RenderRequest) {
			r.Options = map[string]string{"groups": "docker, kvm,adm,,docker"}
		}},
		{"keys with comments", func(t *testing.T, r *pluginv1.RenderRequest) {
			r.AuthorizedKey += " job-42@runner"
			r.HostKey.PublicKey += " host key: with # and {}"
		}},
		{"private key with trailing newlines", func(t *testing.T, r *pluginv1.RenderRequest) {
			r.HostKey.PrivateKey = append(r.HostKey.PrivateKey, "\n\n"...)
		}},
		{"everything", func(t *testing.T, r *pluginv1.RenderRequest) {
			r.Password = "Zq8-rT_w.Kp+2=@LmN4xY-vB7cD9eF0gH"
			r.Hostname = "ci.example.com"
			r.Timezone = "Asia/Kolkata"
			r.Options = map[string]string{"sudo": "false", "groups": "docker"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := validRequest(t)
			if tc.edit != nil {
				tc.edit(t, req)
			}
			resp, err := render(t, req)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if resp.GetDatasource() != pluginv1.Datasource_DATASOURCE_NOCLOUD {
				t.Errorf("datasource = %v, want NOCLOUD", resp.GetDatasource())
			}
			if len(resp.GetNetworkData()) != 0 {
				t.Errorf("network_data = %q, want empty (DHCP)", resp.GetNetworkData())
			}
			if pw := req.GetPassword(); pw != "" && bytes.Contains(resp.GetUserData(), []byte(pw)) {
				t.Error("the plaintext password is in the user-data")
			}
			validateSchema(t, resp.GetUserData())
			checkDocument(t, req, parse(t, resp.GetUserData()))
		})
	}
}

func TestRenderRecipe(t *testing.T) {
	resp, err := render(t, validRequest(t))
	if err != nil {
		t.Fatal(err)
	}
	r := resp.GetRecipe()
	want := &pluginv1.RunRecipe{
		Shell: "bash", ScriptExtension: ".sh", TempDir: "/tmp", PathSeparator: "/",
		Command: cloudinit.RunCommand, ReadinessCommand: cloudinit.ReadinessCommand,
	}
	if r.String() != want.String() {
		t.Errorf("recipe = %v, want %v", r, want)
	}
	if n := strings.Count(r.GetCommand(), "{script}"); n != 1 {
		t.Errorf("command has %d {script} placeholders, want 1", n)
	}
}

// refusal is a request the plugin must refuse, naming field.
type refusal struct {
	name  string
	field string
	edit  func(t *testing.T, r *pluginv1.RenderRequest)
}

func refusals() []refusal {
	var cases []refusal
	for name, v := range map[string]string{
		"empty":                 "",
		"newline":               "runner\nroot",
		"injected list item":    "runner\n- name: evil",
		"carriage return":       "runner\r",
		"space":                 "run ner",
		"upper case":            "Runner",
		"leading digit":         "1runner",
		"leading dash":          "-runner",
		"double quote":          `run"ner`,
		"single quote":          "run'ner",
		"comment":               "runner#x",
		"yaml flow mapping":     "{runner}",
		"yaml mapping":          "runner: {sudo: true}",
		"unicode":               "rünner",
		"33 characters":         "a" + strings.Repeat("b", 32),
		"nul byte":              "run\x00ner",
		"root":                  "root",
		"path":                  "../root",
		"dollar":                "$USER",
		"trailing dollar (NIS)": "runner$",
	} {
		cases = append(cases, refusal{"username " + name, "username", func(_ *testing.T, r *pluginv1.RenderRequest) { r.Username = v }})
	}
	for name, v := range map[string]string{
		"newline":              "ci-job\nhostname: evil",
		"upper case":           "CI-Job",
		"underscore":           "ci_job",
		"space":                "ci job",
		"comment":              "ci#job",
		"yaml flow":            "{ci}",
		"leading dash":         "-ci",
		"empty label":          "ci..example.com",
		"64-character label":   strings.Repeat("h", 64),
		"254 characters":       strings.Repeat("h.", 127),
		"unicode":              "hö",
		"trailing dot":         "ci.",
		"first label too long": strings.Repeat("h", 64) + ".example.com",
	} {
		cases = append(cases, refusal{"hostname " + name, "hostname", func(_ *testing.T, r *pluginv1.RenderRequest) { r.Hostname = v }})
	}
	for name, v := range map[string]string{
		"unknown zone":    "Mars/Olympus_Mons",
		"newline":         "Europe/Zurich\nruncmd: [reboot]",
		"Go's Local":      "Local",
		"relative path":   "../../etc/passwd",
		"absolute path":   "/etc/localtime",
		"zoneinfo file":   "posixrules",
		"space":           "Europe/ Zurich",
		"too long":        "Europe/" + strings.Repeat("x", 64),
		"lower-case utc?": "utc/x",
	} {
		cases = append(cases, refusal{"timezone " + name, "timezone", func(_ *testing.T, r *pluginv1.RenderRequest) { r.Timezone = v }})
	}
	for name, v := range map[string]string{
		"too short":      "Ab1-xyz",
		"newline":        "Abcdef1-\nssh_pwauth: true",
		"nul byte":       "Abcdef1-\x00xyz",
		"invalid UTF-8":  "Abcdef1-\xff\xfe",
		"too long":       strings.Repeat("Ab1-", 65),
		"line separator": "Abcdef1-\u2028x",
	} {
		cases = append(cases, refusal{"password " + name, "password", func(_ *testing.T, r *pluginv1.RenderRequest) { r.Password = v }})
	}
	for name, v := range map[string]string{
		"space":    "runner 12",
		"newline":  "runner-12\nx",
		"too long": strings.Repeat("i", 254),
		"slash":    "a/b",
	} {
		cases = append(cases, refusal{"instance_id " + name, "instance_id", func(_ *testing.T, r *pluginv1.RenderRequest) { r.InstanceId = v }})
	}
	cases = append(cases,
		refusal{"authorized_key empty", "authorized_key", func(_ *testing.T, r *pluginv1.RenderRequest) { r.AuthorizedKey = "" }},
		refusal{"authorized_key garbage", "authorized_key", func(_ *testing.T, r *pluginv1.RenderRequest) { r.AuthorizedKey = "not a key" }},
		refusal{"authorized_key second key", "authorized_key", func(t *testing.T, r *pluginv1.RenderRequest) {
			r.AuthorizedKey += "\n" + osutiltest.NewKeyPair(t).Public
		}},
		refusal{"authorized_key injected YAML", "authorized_key", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.AuthorizedKey += "\n- name: evil"
		}},
		refusal{"authorized_key options", "authorized_key", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.AuthorizedKey = `command="/bin/sh" ` + r.AuthorizedKey
		}},
		refusal{"authorized_key commented line first", "authorized_key", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.AuthorizedKey = "# a comment\n" + r.AuthorizedKey
		}},
		refusal{"authorized_key nul byte", "authorized_key", func(_ *testing.T, r *pluginv1.RenderRequest) { r.AuthorizedKey += "\x00" }},
		refusal{"authorized_key private key", "authorized_key", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.AuthorizedKey = string(r.HostKey.PrivateKey)
		}},
		refusal{"host_key missing", "host_key", func(_ *testing.T, r *pluginv1.RenderRequest) { r.HostKey = nil }},
		refusal{"host_key type rsa", "host_key.type", func(_ *testing.T, r *pluginv1.RenderRequest) { r.HostKey.Type = "ssh-rsa" }},
		refusal{"host_key type empty", "host_key.type", func(_ *testing.T, r *pluginv1.RenderRequest) { r.HostKey.Type = "" }},
		refusal{"host_key pair mismatch", "host_key.public_key", func(t *testing.T, r *pluginv1.RenderRequest) {
			r.HostKey.PublicKey = osutiltest.NewKeyPair(t).Public
		}},
		refusal{"host_key public second line", "host_key.public_key", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.HostKey.PublicKey += "\nssh_pwauth: true"
		}},
		refusal{"host_key public empty", "host_key.public_key", func(_ *testing.T, r *pluginv1.RenderRequest) { r.HostKey.PublicKey = "" }},
		refusal{"host_key private empty", "host_key.private_key", func(_ *testing.T, r *pluginv1.RenderRequest) { r.HostKey.PrivateKey = nil }},
		refusal{"host_key private garbage", "host_key.private_key", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.HostKey.PrivateKey = []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n")
		}},
		refusal{"host_key private trailing YAML", "host_key.private_key", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.HostKey.PrivateKey = append(r.HostKey.PrivateKey, "ssh_pwauth: true\n"...)
		}},
		refusal{"host_key private two blocks", "host_key.private_key", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.HostKey.PrivateKey = append(r.HostKey.PrivateKey, r.HostKey.PrivateKey...)
		}},
		refusal{"host_key private encrypted", "host_key.private_key", func(t *testing.T, r *pluginv1.RenderRequest) {
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("passphrase"))
			if err != nil {
				t.Fatal(err)
			}
			r.HostKey = osutiltest.FromKey(t, priv).HostKey()
			r.HostKey.PrivateKey = pem.EncodeToMemory(block)
		}},
		refusal{"host_key private PEM headers", "host_key.private_key", func(_ *testing.T, r *pluginv1.RenderRequest) {
			block, _ := pem.Decode(r.HostKey.PrivateKey)
			block.Headers = map[string]string{"Proc-Type": "4,ENCRYPTED"}
			r.HostKey.PrivateKey = pem.EncodeToMemory(block)
		}},
		refusal{"host_key private PKCS#8", "host_key.private_key", func(t *testing.T, r *pluginv1.RenderRequest) {
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			der, err := x509.MarshalPKCS8PrivateKey(priv)
			if err != nil {
				t.Fatal(err)
			}
			r.HostKey = osutiltest.FromKey(t, priv).HostKey()
			r.HostKey.PrivateKey = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
		}},
		refusal{"host_key RSA key labelled ed25519", "host_key.public_key", func(t *testing.T, r *pluginv1.RenderRequest) {
			priv, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			r.HostKey = osutiltest.FromKey(t, priv).HostKey()
		}},
		refusal{"host_key private of another type", "host_key.private_key", func(t *testing.T, r *pluginv1.RenderRequest) {
			priv, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				t.Fatal(err)
			}
			r.HostKey.PrivateKey = osutiltest.FromKey(t, priv).PrivatePEM
		}},
		refusal{"unknown option", "options", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.Options = map[string]string{"runcmd": "reboot"}
		}},
		refusal{"option sudo not a boolean", "options.sudo", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.Options = map[string]string{"sudo": "yes"}
		}},
		refusal{"option groups bad name", "options.groups", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.Options = map[string]string{"groups": "docker,Wheel"}
		}},
		refusal{"option groups injected YAML", "options.groups", func(_ *testing.T, r *pluginv1.RenderRequest) {
			r.Options = map[string]string{"groups": "docker\nruncmd: [reboot]"}
		}},
		refusal{"option groups too many", "options.groups", func(_ *testing.T, r *pluginv1.RenderRequest) {
			var g []string
			for i := range 33 {
				g = append(g, fmt.Sprintf("g%d", i))
			}
			r.Options = map[string]string{"groups": strings.Join(g, ",")}
		}},
	)
	return cases
}

func TestRenderRefusesInvalidInput(t *testing.T) {
	for _, tc := range refusals() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := validRequest(t)
			req.Password = "Secret-Pa55word-x"
			tc.edit(t, req)
			resp, err := render(t, req)
			osutiltest.CheckRefusal(t, resp, err, tc.field, req)
		})
	}
}
