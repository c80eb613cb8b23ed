package cloudbase_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil/osutiltest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/windows-cloudbase/cloudbase"
)

// documentedCloudConfig is what Cloudbase-Init documents for cloud-config
// user-data, from doc/source/userdata.rst ("Cloud config") of
// github.com/cloudbase/cloudbase-init (1.1.0 .. 1.1.9): the directives, and
// the attributes of a users entry. The code agrees:
// userdataplugins/cloudconfigplugins/factory.py maps these names (plus the
// aliases "timezone" and "hostname") to plugins, users.py reads these
// attributes. The rendered document may use nothing else.
func documentedCloudConfig() (directives, userAttributes []string) {
	return []string{"write_files", "set_timezone", "set_hostname", "groups", "users", "ntp", "runcmd"},
		[]string{"name", "gecos", "primary_group", "groups", "passwd", "inactive", "expiredate", "ssh_authorized_keys"}
}

// documentedPartTypes are the content types Cloudbase-Init's default
// user_data_plugins handle (cloudbaseinit/conf/default.py; the plugins'
// mime types in userdataplugins/*.py); the container is multipart/mixed.
func documentedPartTypes() []string {
	return []string{"text/part-handler", "text/cloud-config", "text/cloud-boothook", "text/x-shellscript", "multipart/mixed", "text/x-cfninitdata"}
}

// checkUserData reads resp's user-data like Cloudbase-Init and asserts it
// does exactly what req asks, with documented keys only.
func checkUserData(t *testing.T, req *pluginv1.RenderRequest, resp *pluginv1.RenderResponse) {
	t.Helper()
	parts := readUserData(t, resp.GetUserData())
	var types []string
	for _, p := range parts {
		types = append(types, p.ContentType)
		if !slices.Contains(documentedPartTypes(), p.ContentType) {
			t.Errorf("part of type %s: Cloudbase-Init has no plugin for it", p.ContentType)
		}
	}
	if want := []string{"multipart/mixed", "text/cloud-config", "text/x-shellscript"}; !slices.Equal(types, want) {
		t.Fatalf("parts %v, want %v in that order (the user must exist before the script adds it to a group)", types, want)
	}
	config, script := parts[1], parts[2]
	if script.Filename == nil || !strings.HasSuffix(*script.Filename, ".ps1") {
		t.Errorf("the script part's file name %v must end in .ps1: Cloudbase-Init picks the interpreter by extension", script.Filename)
	}
	checkScript(t, req, *script.Payload)

	directives, attributes := documentedCloudConfig()
	cc := config.CloudConfig
	wantKeys := []string{"users"}
	if req.GetHostname() != "" {
		wantKeys = append(wantKeys, "set_hostname")
	}
	if req.GetTimezone() != "" {
		wantKeys = append(wantKeys, "set_timezone")
	}
	slices.Sort(wantKeys)
	if got := slices.Sorted(maps.Keys(cc)); !slices.Equal(got, wantKeys) {
		t.Errorf("cloud-config keys %v, want exactly %v", got, wantKeys)
	}
	for k := range cc {
		if !slices.Contains(directives, k) {
			t.Errorf("cloud-config key %q is not a documented Cloudbase-Init directive", k)
		}
	}
	if req.GetHostname() != "" && cc["set_hostname"] != req.GetHostname() {
		t.Errorf("set_hostname = %#v, want %q", cc["set_hostname"], req.GetHostname())
	}
	if req.GetTimezone() != "" && cc["set_timezone"] != req.GetTimezone() {
		t.Errorf("set_timezone = %#v, want %q", cc["set_timezone"], req.GetTimezone())
	}
	users, _ := cc["users"].([]any)
	if len(users) != 1 {
		t.Fatalf("users has %d entries, want exactly 1", len(users))
	}
	u, _ := users[0].(map[string]any)
	for k := range u {
		if !slices.Contains(attributes, k) {
			t.Errorf("users[0] key %q is not a documented attribute", k)
		}
	}
	if got := slices.Sorted(maps.Keys(u)); !slices.Equal(got, []string{"groups", "name", "passwd", "ssh_authorized_keys"}) {
		t.Errorf("users[0] keys %v, want groups, name, passwd, ssh_authorized_keys", got)
	}
	// Typed comparisons: PyYAML must have read strings, not a bool or an
	// int that happens to print the same.
	if name, ok := u["name"].(string); !ok || name != req.GetUsername() {
		t.Errorf("name = %#v, want the string %q", u["name"], req.GetUsername())
	}
	if pw, ok := u["passwd"].(string); !ok || pw != req.GetPassword() {
		t.Errorf("passwd is not the request's password as a string (type %T)", u["passwd"])
	}
	wantGroups := []any{"Administrators"}
	for g := range strings.SplitSeq(req.GetOptions()[cloudbase.OptionGroups], ",") {
		if g = strings.TrimSpace(g); g != "" && !strings.EqualFold(g, "Administrators") && !slices.Contains(wantGroups, any(g)) {
			wantGroups = append(wantGroups, g)
		}
	}
	if fmt.Sprint(u["groups"]) != fmt.Sprint(wantGroups) {
		t.Errorf("groups = %v, want %v", u["groups"], wantGroups)
	}
	if got, want := fmt.Sprint(u["ssh_authorized_keys"]), fmt.Sprint([]any{canonicalKey(t, req.GetAuthorizedKey())}); got != want {
		t.Errorf("ssh_authorized_keys = %s, want %s", got, want)
	}

	// The password is where Cloudbase-Init reads it and nowhere else.
	pw := req.GetPassword()
	if strings.Contains(*script.Payload, pw) {
		t.Error("the PowerShell part holds the password")
	}
	if strings.Contains(string(resp.GetUserData()), pw) {
		t.Error("the raw user-data holds the plaintext password outside the base64-encoded cloud-config part")
	}
	if strings.Contains(resp.GetRecipe().String(), pw) {
		t.Error("the recipe holds the password")
	}
	if n := countStrings(cc, pw); n != 1 {
		t.Errorf("the password is %d values of the cloud-config, want 1 (users[0].passwd)", n)
	}
}

// countStrings counts the string values in v equal to s.
func countStrings(v any, s string) int {
	switch v := v.(type) {
	case string:
		if v == s {
			return 1
		}
	case []any:
		n := 0
		for _, e := range v {
			n += countStrings(e, s)
		}
		return n
	case map[string]any:
		n := 0
		for k, e := range v {
			n += countStrings(k, s) + countStrings(e, s)
		}
		return n
	}
	return 0
}

func TestRenderValid(t *testing.T) {
	cases := []struct {
		name string
		edit func(r *pluginv1.RenderRequest)
	}{
		{"as the core sends it", nil},
		{"no hostname, time zone or instance id", func(r *pluginv1.RenderRequest) { r.Hostname, r.InstanceId = "", "" }},
		{"time zone", func(r *pluginv1.RenderRequest) { r.Timezone = "Europe/Zurich" }},
		{"15-character hostname", func(r *pluginv1.RenderRequest) { r.Hostname = "runner-12-34567" }},
		{"20-character username", func(r *pluginv1.RenderRequest) { r.Username = "Runner_20_characters" }},
		{"username with an apostrophe", func(r *pluginv1.RenderRequest) { r.Username = "o'brien" }},
		{"username with PowerShell syntax", func(r *pluginv1.RenderRequest) { r.Username = "$(x)`n#{}&!%~^'" }},
		{"username with inner space and dot", func(r *pluginv1.RenderRequest) { r.Username = "ci run.ner" }},
		{"username YAML would read as a boolean", func(r *pluginv1.RenderRequest) { r.Username = "yes" }},
		{"username YAML 1.1 would read as a number", func(r *pluginv1.RenderRequest) { r.Username = "0x1F" }},
		{"password with quotes, backslash and YAML syntax", func(r *pluginv1.RenderRequest) { r.Password = `a"B'c\1: #{x} <&>` }},
		{"password YAML 1.1 would read as a number", func(r *pluginv1.RenderRequest) { r.Password = "12:30:45:00:1A" }},
		{"8-character password", func(r *pluginv1.RenderRequest) { r.Password = "aB3-efgh" }},
		{"password of three character classes", func(r *pluginv1.RenderRequest) { r.Password = "abcDEF123456" }},
		{"shell powershell", func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"shell": "powershell"} }},
		{"extra groups", func(r *pluginv1.RenderRequest) {
			r.Options = map[string]string{"groups": "Remote Desktop Users, docker-users,administrators, docker-users"}
		}},
		{"keys with comments", func(r *pluginv1.RenderRequest) {
			r.AuthorizedKey += " job 42's key"
			r.HostKey.PublicKey += " host'key"
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := validRequest(t)
			if tc.edit != nil {
				tc.edit(req)
			}
			resp, err := render(t, req)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if resp.GetDatasource() != pluginv1.Datasource_DATASOURCE_CONFIG_DRIVE {
				t.Errorf("datasource = %v, want CONFIG_DRIVE", resp.GetDatasource())
			}
			if len(resp.GetNetworkData()) != 0 {
				t.Errorf("network_data = %q, want empty (DHCP)", resp.GetNetworkData())
			}
			checkUserData(t, req, resp)
		})
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	req := validRequest(t)
	a, err := render(t, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := render(t, req)
	if err != nil {
		t.Fatal(err)
	}
	if string(a.GetUserData()) != string(b.GetUserData()) {
		t.Error("two renders of the same request differ")
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
	add := func(field, name string, edit func(r *pluginv1.RenderRequest)) {
		cases = append(cases, refusal{field + " " + name, field, func(_ *testing.T, r *pluginv1.RenderRequest) { edit(r) }})
	}
	for name, v := range map[string]string{
		"empty":                "",
		"21 characters":        strings.Repeat("r", 21),
		"newline":              "runner\nroot",
		"injected YAML":        "runner\n- name: evil",
		"carriage return":      "runner\r",
		"tab":                  "run\tner",
		"nul byte":             "run\x00ner",
		"non-ASCII":            "rünner",
		"typographic quote":    "o\u2019brien",
		"dots only":            "...",
		"spaces only":          "   ",
		"dots and spaces only": ". .",
		"leading space":        " runner",
		"trailing space":       "runner ",
		"invalid UTF-8":        "run\xffner",
		"json injection":       `runner", "passwd": "x`,
		"double quote":         `run"ner`,
		"backslash (domain)":   `DOMAIN\runner`,
		"at sign (UPN)":        "runner@example.com",
		"colon":                "run:ner",
		"semicolon":            "run;ner",
		"pipe":                 "run|ner",
		"equals":               "run=ner",
		"comma":                "run,ner",
		"plus":                 "run+ner",
		"asterisk":             "run*ner",
		"question mark":        "run?ner",
		"angle brackets":       "<runner>",
		"square brackets":      "[runner]",
		"slash":                "run/ner",
	} {
		add("username", name, func(r *pluginv1.RenderRequest) { r.Username = v })
	}
	for name, v := range map[string]string{
		"empty":                  "",
		"7 characters":           "aB3-efg",
		"21 characters":          "aB3-" + strings.Repeat("x", 17),
		"32 characters (core's)": "aB3-" + strings.Repeat("x", 28),
		"two character classes":  "abcdefgh12345",
		"lower case only":        "abcdefghijkl",
		"contains the username":  "xRUNNER-12",
		"newline":                "aB3-efgh\nx",
		"nul byte":               "aB3-efgh\x00",
		"non-ASCII":              "aB3-efghü",
		"injected YAML":          "aB3-\"\n- evil",
	} {
		add("password", name, func(r *pluginv1.RenderRequest) { r.Password = v })
	}
	for name, v := range map[string]string{
		"16 characters":  "runner-12-345678",
		"digits only":    "1234567",
		"upper case":     "CI-JOB",
		"underscore":     "ci_job",
		"dotted":         "ci.example.com",
		"newline":        "ci\nset_hostname: evil",
		"leading dash":   "-ci",
		"trailing dash":  "ci-",
		"space":          "ci job",
		"non-ASCII":      "hö",
		"json injection": `ci", "runcmd": ["x`,
	} {
		add("hostname", name, func(r *pluginv1.RenderRequest) { r.Hostname = v })
	}
	for name, v := range map[string]string{
		"unknown":      "Mars/Olympus_Mons",
		"newline":      "Europe/Zurich\nruncmd: [reboot]",
		"Local":        "Local",
		"path":         "../../Windows/System32",
		"windows name": "W. Europe Standard Time",
	} {
		add("timezone", name, func(r *pluginv1.RenderRequest) { r.Timezone = v })
	}
	add("instance_id", "newline", func(r *pluginv1.RenderRequest) { r.InstanceId = "i-1\nx" })
	add("authorized_key", "empty", func(r *pluginv1.RenderRequest) { r.AuthorizedKey = "" })
	add("authorized_key", "second line", func(r *pluginv1.RenderRequest) { r.AuthorizedKey += "\n" + r.HostKey.PublicKey })
	add("authorized_key", "options", func(r *pluginv1.RenderRequest) { r.AuthorizedKey = "no-pty " + r.AuthorizedKey })
	add("authorized_key", "PowerShell injection", func(r *pluginv1.RenderRequest) { r.AuthorizedKey = "'; Remove-Item C:\\ -Recurse; '" })
	add("host_key", "missing", func(r *pluginv1.RenderRequest) { r.HostKey = nil })
	add("host_key.type", "rsa", func(r *pluginv1.RenderRequest) { r.HostKey.Type = "ssh-rsa" })
	add("host_key.public_key", "injected line", func(r *pluginv1.RenderRequest) { r.HostKey.PublicKey += "\n'; exit; '" })
	add("host_key.private_key", "trailing data", func(r *pluginv1.RenderRequest) {
		r.HostKey.PrivateKey = append(r.HostKey.PrivateKey, "'; exit; '"...)
	})
	add("host_key.private_key", "not PEM", func(r *pluginv1.RenderRequest) { r.HostKey.PrivateKey = []byte("garbage") })
	add("options", "unknown", func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"runcmd": "shutdown /r"} })
	add("options.shell", "bash", func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"shell": "bash"} })
	add("options.shell", "cmd", func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"shell": "cmd"} })
	add("options.shell", "upper case", func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"shell": "PWSH"} })
	add("options.groups", "forbidden character", func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"groups": "docker;users"} })
	add("options.groups", "newline", func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"groups": "docker\n- evil"} })
	add("options.groups", "too long", func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"groups": strings.Repeat("g", 257)} })
	add("options.groups", "dots only", func(r *pluginv1.RenderRequest) { r.Options = map[string]string{"groups": "docker,.."} })
	cases = append(cases, refusal{"host_key.public_key pair mismatch", "host_key.public_key", func(t *testing.T, r *pluginv1.RenderRequest) {
		r.HostKey.PublicKey = osutiltest.NewKeyPair(t).Public
	}})
	return cases
}

func TestRenderRefusesInvalidInput(t *testing.T) {
	for _, tc := range refusals() {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := validRequest(t)
			tc.edit(t, req)
			resp, err := render(t, req)
			osutiltest.CheckRefusal(t, resp, err, tc.field, req)
		})
	}
}
