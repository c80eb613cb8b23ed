package osutiltest

import (
	"context"
	"encoding/base64"
	"encoding/pem"
	"slices"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// RenderFunc is an OS plugin's Render method.
type RenderFunc func(context.Context, *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error)

// CheckRefusal fails the test unless err, Render's answer to req, is an
// InvalidArgument error whose message starts with the request field name
// field and quotes neither the password nor the private host key
// ([CheckNoSecrets]). A nil err fails with the size of what resp rendered.
func CheckRefusal(t testing.TB, resp *pluginv1.RenderResponse, err error, field string, req *pluginv1.RenderRequest) {
	t.Helper()
	if err == nil {
		t.Fatalf("Render accepted it and wrote %d bytes of user-data", len(resp.GetUserData()))
	}
	if !pluginapi.IsInvalidInput(err) {
		t.Fatalf("error %v: want an InvalidArgument (pluginapi.InvalidInput) error", err)
	}
	msg := pluginapi.ErrorMessage(err)
	if !strings.HasPrefix(msg, field+" ") {
		t.Errorf("error %q does not start with the field name %s", msg, field)
	}
	CheckNoSecrets(t, msg, req)
}

// CheckNoSecrets fails the test if msg quotes req's password (4 characters
// or more) or any part of its private host key: a PEM line of 48
// characters or more (a whole line is 64) or a 48-character run of the
// key's base64 body.
// The public key embedded in an OpenSSH private key may fill such a run
// (RSA), and quoting the public key is fine, so runs the public key holds
// do not count.
func CheckNoSecrets(t testing.TB, msg string, req *pluginv1.RenderRequest) {
	t.Helper()
	if pw := req.GetPassword(); len(pw) >= 4 && strings.Contains(msg, pw) {
		t.Errorf("error %q quotes the password", msg)
	}
	public := req.GetHostKey().GetPublicKey()
	private := req.GetHostKey().GetPrivateKey()
	runs := strings.Split(string(private), "\n")
	if block, _ := pem.Decode(private); block != nil {
		secret := base64.StdEncoding.EncodeToString(block.Bytes)
		for i := 0; i+48 <= len(secret); i += 48 {
			runs = append(runs, secret[i:i+48])
		}
	}
	for _, run := range runs {
		if len(run) >= 48 && strings.Contains(msg, run) && !strings.Contains(public, run) {
			t.Errorf("error %q quotes the private key", msg)
			return
		}
	}
}

// FuzzRender is the fuzz target both OS plugins share. Each input sets a
// request's username, authorized_key, hostname, timezone, password and one
// option (key and value; none when the key is empty), with the fixed host
// key [SeedKeyPair](1), and calls render. A refusal must be an
// InvalidArgument error whose message starts with one of fields and never
// quotes a refused password; a rendered answer goes to check, which
// asserts what the plugin's document must say about req.
//
// The seven string arguments are the layout of the committed corpora in
// testdata/fuzz/<FuzzName>: call it from the fuzz function whose name
// those corpora carry.
func FuzzRender(f *testing.F, render RenderFunc, fields []string, check func(t *testing.T, req *pluginv1.RenderRequest, resp *pluginv1.RenderResponse)) {
	f.Helper()
	host := SeedKeyPair(f, 1).HostKey()
	f.Fuzz(func(t *testing.T, username, authorizedKey, hostname, timezone, password, optKey, optValue string) {
		req := &pluginv1.RenderRequest{
			Username:      username,
			AuthorizedKey: authorizedKey,
			HostKey:       host,
			Hostname:      hostname,
			Timezone:      timezone,
			Password:      password,
		}
		if optKey != "" {
			req.Options = map[string]string{optKey: optValue}
		}
		resp, err := render(t.Context(), req)
		if err != nil {
			if !pluginapi.IsInvalidInput(err) {
				t.Fatalf("Render error %v is not InvalidArgument", err)
			}
			msg := pluginapi.ErrorMessage(err)
			field, _, _ := strings.Cut(msg, " ")
			if !slices.Contains(fields, field) {
				t.Fatalf("error %q does not start with a request field name", msg)
			}
			// A refused password is never quoted. (Other fields' values
			// are, and the fuzzer may make one equal to the password.)
			if field == "password" && !strings.HasPrefix(msg, `password "[redacted]": `) && !strings.HasPrefix(msg, `password "": `) {
				t.Fatalf("error %q quotes the password", msg)
			}
			return
		}
		check(t, req, resp)
	})
}
