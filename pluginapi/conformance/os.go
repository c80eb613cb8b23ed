package conformance

import (
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// TestOSPlugin launches the OS plugin binary at binaryPath the way the core
// does and checks that it keeps the contract. Every check is a subtest of t.
func TestOSPlugin(t *testing.T, binaryPath string, opts OSOptions) {
	t.Helper()
	if err := opts.validate(); err != nil {
		t.Fatalf("conformance: %v", err)
	}
	h := newHarness(binaryPath, pluginv1.Kind_KIND_OS, opts.Env, opts.StartTimeout, opts.CallTimeout)
	k := &osKit{h: h, opts: opts}
	if !h.runCommon(t) {
		return
	}
	var err error
	if k.osp, err = h.plugin.OS(); err != nil {
		t.Fatal(err)
	}
	if k.base, err = k.newRequest(); err != nil {
		t.Fatal(err)
	}
	t.Run("Render", func(t *testing.T) {
		t.Run("Valid", k.testValid)
		t.Run("Deterministic", k.testDeterministic)
		t.Run("InvalidInput", k.testInvalidInput)
		t.Run("Concurrent", k.testConcurrent)
	})
	h.runFinal(t)
}

type osKit struct {
	h    *harness
	opts OSOptions
	osp  pluginapi.OSPlugin
	base *pluginv1.RenderRequest
}

// newRequest builds the kit's valid request with fresh keys.
func (k *osKit) newRequest() (*pluginv1.RenderRequest, error) {
	client, err := newKeyPair()
	if err != nil {
		return nil, err
	}
	host, err := newKeyPair()
	if err != nil {
		return nil, err
	}
	iid, err := randomName("conformance")
	if err != nil {
		return nil, err
	}
	req := &pluginv1.RenderRequest{
		Username:      "runner",
		AuthorizedKey: client.authorizedKey,
		HostKey:       host.hostKey(),
		Hostname:      "ci-job-42",
		InstanceId:    iid,
	}
	if slices.Contains(k.h.info.GetCapabilities(), "password") {
		if req.Password, err = newPassword(k.h.info.GetMaxPasswordLength()); err != nil {
			return nil, err
		}
	}
	k.h.secrets.add("host private key", req.HostKey.PrivateKey)
	k.h.secrets.add("password", []byte(req.Password))
	return req, nil
}

// request returns a copy of the base request, adjusted by opts.Request and
// then by edit.
func (k *osKit) request(edit func(*pluginv1.RenderRequest)) *pluginv1.RenderRequest {
	req := proto.Clone(k.base).(*pluginv1.RenderRequest)
	if k.opts.Request != nil {
		k.opts.Request(req)
		k.h.secrets.add("password", []byte(req.GetPassword()))
		k.h.secrets.add("host private key", req.GetHostKey().GetPrivateKey())
	}
	if edit != nil {
		edit(req)
	}
	return req
}

// render calls Render with the call timeout; it is safe from several
// goroutines.
func (k *osKit) render(t *testing.T, req *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
	t.Helper()
	resp, err := k.osp.Render(k.h.ctx(t), req)
	k.h.checkErr(t, "Render", err)
	return resp, err
}

func (k *osKit) testValid(t *testing.T) {
	req := k.request(nil)
	resp, err := k.render(t, req)
	if err != nil {
		t.Fatalf("Render of a valid request: %s", pluginapi.ErrorMessage(err))
	}
	if len(resp.GetUserData()) == 0 {
		t.Error("user_data is empty")
	}
	if resp.GetDatasource() == pluginv1.Datasource_DATASOURCE_UNSPECIFIED {
		t.Error("datasource is unspecified: say how the data reaches the guest (NoCloud, ConfigDrive)")
	}
	r := resp.GetRecipe()
	if r == nil {
		t.Fatal("recipe is missing")
	}
	if !strings.Contains(r.GetCommand(), "{script}") {
		t.Errorf("recipe command %q does not contain {script}", r.GetCommand())
	}
	if ext := r.GetScriptExtension(); !scriptExtension.MatchString(ext) {
		t.Errorf("recipe script_extension %q: must match %s, like .sh or .ps1", ext, scriptExtension)
	}
	if !slices.Contains(k.h.info.GetShells(), r.GetShell()) {
		t.Errorf("recipe shell %q is not among the shells GetInfo declares %v", r.GetShell(), k.h.info.GetShells())
	}
	if r.GetTempDir() == "" {
		t.Error("recipe temp_dir is empty")
	}
	if sep := r.GetPathSeparator(); sep != "" && sep != "/" && sep != `\` {
		t.Errorf(`recipe path_separator %q: must be "/" or "\" (empty means "/")`, sep)
	}
	if k.opts.Check != nil {
		k.opts.Check(t, req, resp)
	}
}

// scriptExtension is the rule the core applies to a recipe's
// script_extension (the script's file name is built from it).
var scriptExtension = regexp.MustCompile(`^\.[a-z0-9]{1,8}$`)

// cryptHash matches crypt(3) hashes (MD5, bcrypt, SHA-256/512, yescrypt,
// scrypt), whose salts differ on every render.
var cryptHash = regexp.MustCompile(`\$(?:1|2[abxy]|5|6|7|y|gy)\$[./0-9A-Za-z$=,]+`)

func (k *osKit) mask(userData []byte) []byte {
	out := cryptHash.ReplaceAll(userData, []byte("$CRYPT$"))
	if k.opts.Mask != nil {
		out = k.opts.Mask(out)
	}
	return out
}

// sameRender explains how two renders of the same request differ beyond
// random salts, or returns "". It never quotes user-data, which holds the
// host private key.
func (k *osKit) sameRender(a, b *pluginv1.RenderResponse) string {
	ua, ub := k.mask(a.GetUserData()), k.mask(b.GetUserData())
	if !bytes.Equal(ua, ub) {
		la, lb := bytes.Split(ua, []byte("\n")), bytes.Split(ub, []byte("\n"))
		for i := range min(len(la), len(lb)) {
			if !bytes.Equal(la[i], lb[i]) {
				return fmt.Sprintf("user_data differs at line %d (after masking crypt salts)", i+1)
			}
		}
		return fmt.Sprintf("user_data has %d lines one time and %d the other", len(la), len(lb))
	}
	if !bytes.Equal(a.GetNetworkData(), b.GetNetworkData()) {
		return "network_data differs"
	}
	if a.GetDatasource() != b.GetDatasource() {
		return fmt.Sprintf("datasource differs: %v vs %v", a.GetDatasource(), b.GetDatasource())
	}
	if !proto.Equal(a.GetRecipe(), b.GetRecipe()) {
		return fmt.Sprintf("recipe differs: %v vs %v", a.GetRecipe(), b.GetRecipe())
	}
	return ""
}

func (k *osKit) testDeterministic(t *testing.T) {
	req := k.request(nil)
	first, err := k.render(t, req)
	if err != nil {
		t.Fatalf("Render: %s", pluginapi.ErrorMessage(err))
	}
	second, err := k.render(t, req)
	if err != nil {
		t.Fatalf("second Render of the same request: %s", pluginapi.ErrorMessage(err))
	}
	if diff := k.sameRender(first, second); diff != "" {
		t.Errorf("two renders of the same request differ: %s", diff)
	}
}

// hostileCase is an input that must be refused as InvalidArgument.
type hostileCase struct {
	name  string
	field string // what the error must name
	edit  func(*pluginv1.RenderRequest)
}

func hostileCases() []hostileCase {
	var cases []hostileCase
	for _, v := range []struct{ name, value string }{
		{"newline", "runner\nroot"},
		{"carriage return", "runner\r"},
		{"yaml mapping", "runner: {admin: true}"},
		{"yaml flow sequence", "[runner]"},
		{"ini section", "[users]"},
		{"ini assignment", "runner=admin"},
		{"double quote", `run"ner`},
		{"nul byte", "run\x00ner"},
		{"shell separator", "runner;reboot"},
		{"path", "../root"},
		{"empty", ""},
	} {
		cases = append(cases, hostileCase{name: "username " + v.name, field: "username", edit: func(r *pluginv1.RenderRequest) { r.Username = v.value }})
	}
	for _, v := range []struct{ name, value string }{
		{"newline", "ci-job\nhostname: evil"},
		{"yaml mapping", "host: x"},
		{"ini section", "[host]"},
		{"ini assignment", "host=x"},
		{"space", "ci job"},
		{"double quote", `host"`},
		{"nul byte", "host\x00"},
		{"comment", "host#x"},
		{"shell separator", "host;reboot"},
	} {
		cases = append(cases, hostileCase{name: "hostname " + v.name, field: "hostname", edit: func(r *pluginv1.RenderRequest) { r.Hostname = v.value }})
	}
	cases = append(cases,
		hostileCase{name: "authorized_key second line", field: "authorized_key", edit: func(r *pluginv1.RenderRequest) {
			r.AuthorizedKey += "\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGF0dGFja2VyLWtleS1hdHRhY2tlci1rZXktMDAwMA attacker"
		}},
		hostileCase{name: "host_key public key second line", field: "host_key", edit: func(r *pluginv1.RenderRequest) {
			r.HostKey.PublicKey += "\nssh_pwauth: true"
		}},
		hostileCase{name: "timezone newline", field: "timezone", edit: func(r *pluginv1.RenderRequest) {
			r.Timezone = "Europe/Zurich\nruncmd: [reboot]"
		}},
		hostileCase{name: "unknown option", field: "conformance-unknown-option", edit: func(r *pluginv1.RenderRequest) {
			if r.Options == nil {
				r.Options = map[string]string{}
			}
			r.Options["conformance-unknown-option"] = "x"
		}},
	)
	return cases
}

// namesField reports whether msg names field, in any of the usual
// spellings (authorized_key, authorized key, authorizedKey, AuthorizedKey).
func namesField(msg, field string) bool {
	norm := func(s string) string {
		s = strings.ToLower(s)
		return strings.NewReplacer("_", "", " ", "", "-", "", ".", "").Replace(s)
	}
	return strings.Contains(norm(msg), norm(field))
}

func (k *osKit) testInvalidInput(t *testing.T) {
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := k.render(t, k.request(tc.edit))
			if err == nil {
				t.Fatalf("Render accepted it (%d bytes of user_data): hostile input must be refused, never escaped into the document", len(resp.GetUserData()))
			}
			if !pluginapi.IsInvalidInput(err) {
				t.Errorf("Render error %v: want code InvalidArgument (pluginapi.InvalidInput)", err)
			}
			if msg := pluginapi.ErrorMessage(err); !namesField(msg, tc.field) {
				t.Errorf("Render error %q does not name the field %s", msg, tc.field)
			}
		})
	}
}

func (k *osKit) testConcurrent(t *testing.T) {
	const n = 8
	reqs := make([]*pluginv1.RenderRequest, n)
	for i := range reqs {
		reqs[i] = k.request(func(r *pluginv1.RenderRequest) { r.Hostname = fmt.Sprintf("ci-job-%d", i) })
	}
	resps := make([]*pluginv1.RenderResponse, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range reqs {
		wg.Go(func() { resps[i], errs[i] = k.render(t, reqs[i]) })
	}
	wg.Wait()
	for i := range reqs {
		if errs[i] != nil {
			t.Errorf("concurrent Render %d: %s", i, pluginapi.ErrorMessage(errs[i]))
			continue
		}
		// The same request rendered alone must give the same result: no
		// state leaks between concurrent calls.
		alone, err := k.render(t, reqs[i])
		if err != nil {
			t.Fatalf("Render %d alone: %s", i, pluginapi.ErrorMessage(err))
		}
		if diff := k.sameRender(resps[i], alone); diff != "" {
			t.Errorf("concurrent Render %d differs from the same request rendered alone: %s", i, diff)
		}
	}
}
