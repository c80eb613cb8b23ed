package conformance_test

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/conformance"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/sshd"
)

// The kit's own tests run it against two fixture plugins in testdata: a
// correct one, which must pass, and the same plugin broken in one way at a
// time (CONFORMANCE_FIXTURE_MODE), which must fail the matching check.
const (
	modeEnv = "CONFORMANCE_FIXTURE_MODE"
	// dirEnv passes the fixtures built by the parent test process to the
	// child processes of TestKitCatchesBrokenPlugins.
	dirEnv = "CONFORMANCE_FIXTURE_DIR"
)

// fixtureDir holds the built fixture binaries; TestMain sets it.
var fixtureDir string

func osFixture() string  { return filepath.Join(fixtureDir, pluginapi.BinaryPrefix+"osfixture") }
func sshFixture() string { return filepath.Join(fixtureDir, pluginapi.BinaryPrefix+"sshfixture") }

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if dir := os.Getenv(dirEnv); dir != "" {
		fixtureDir = dir
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "conformance-fixtures-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() { _ = os.RemoveAll(dir) }()
	fixtureDir = dir
	for out, pkg := range map[string]string{osFixture(): "./testdata/osplugin", sshFixture(): "./testdata/sshplugin"} {
		if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "go build %s: %v\n%s", pkg, err, b)
			return 1
		}
	}
	return m.Run()
}

// fixtureEnv passes the fixture mode of a child process on to the plugin.
func fixtureEnv() []string {
	if mode := os.Getenv(modeEnv); mode != "" {
		return []string{modeEnv + "=" + mode}
	}
	return nil
}

func TestKitOnOSFixture(t *testing.T) {
	conformance.TestOSPlugin(t, osFixture(), conformance.OSOptions{Env: fixtureEnv()})
}

func TestKitOnTransportFixture(t *testing.T) {
	conformance.TestTransportPlugin(t, sshFixture(), transportOptions(t))
}

// transportOptions points the kit at a real OpenSSH sshd on loopback. The
// login is a throwaway non-root account, like the CI user in a guest:
// OpenSSH refuses to deliver signals to root sessions (no post-auth
// privilege separation), so a root login could not show that a transport
// ends remote commands.
func transportOptions(t *testing.T) conformance.TransportOptions {
	key, err := sshd.NewKeyPair()
	if err != nil {
		t.Fatal(err)
	}
	account := sshd.CreateUserForTest(t)
	home, err := user.Lookup(account.Name)
	if err != nil {
		t.Fatal(err)
	}
	srv := sshd.StartForTest(t, sshd.Options{User: account.Name, AuthorizedKeys: []string{key.AuthorizedKey}})
	return conformance.TransportOptions{
		Env: fixtureEnv(),
		Target: func(*testing.T) *pluginv1.Target {
			return &pluginv1.Target{
				Host: srv.Host(), Port: uint32(srv.Port()), Username: account.Name,
				PrivateKey: key.PrivateKeyPEM, HostKeys: []string{srv.HostPublicKey()},
			}
		},
		// A command the broken fixture leaves behind ends on its own soon
		// after the kit gave up on it.
		Commands:            conformance.Commands{Block: `echo "started $$"; exec sleep 90`},
		UploadDir:           home.HomeDir,
		WrongHostKeyTimeout: 2 * time.Second,
		CallTimeout:         20 * time.Second,
	}
}

func TestKitCatchesBrokenPlugins(t *testing.T) {
	tests := []struct {
		test     string
		mode     string
		wantFail []string
		wantOut  []string
	}{
		{test: "TestKitOnOSFixture", mode: "accept-newline", wantFail: []string{"Render/InvalidInput/username_newline"}},
		{test: "TestKitOnOSFixture", mode: "no-placeholder", wantFail: []string{"Render/Valid"}},
		{test: "TestKitOnOSFixture", mode: "nondeterministic", wantFail: []string{"Render/Deterministic", "Render/Concurrent"}},
		{test: "TestKitOnOSFixture", mode: "wrong-name", wantFail: []string{"GetInfo"}},
		{test: "TestKitOnOSFixture", mode: "log-secret", wantFail: []string{"NoSecretsInLog"}, wantOut: []string{"[REDACTED host private key]"}},
		{test: "TestKitOnOSFixture", mode: "unhealthy", wantFail: []string{"Health"}},
		{test: "TestKitOnOSFixture", mode: "plain-error", wantFail: []string{"Render/InvalidInput/hostname_newline"}},
		{test: "TestKitOnTransportFixture", mode: "insecure", wantFail: []string{"HostKey/WrongRefusedByWaitReady", "HostKey/WrongRefusedByExec", "HostKey/WrongRefusedByUpload"}},
		{test: "TestKitOnTransportFixture", mode: "ignore-cancel", wantFail: []string{"Exec/Cancel"}},
		{test: "TestKitOnTransportFixture", mode: "trust-upload", wantFail: []string{"Upload/WrongChecksum"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+tt.test+"$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), modeEnv+"="+tt.mode, dirEnv+"="+fixtureDir)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the kit passed a fixture broken with %s=%s:\n%s", modeEnv, tt.mode, out)
			}
			for _, sub := range tt.wantFail {
				if want := "--- FAIL: " + tt.test + "/" + sub + " "; !strings.Contains(string(out), want) {
					t.Errorf("with %s=%s the kit did not fail %s/%s:\n%s", modeEnv, tt.mode, tt.test, sub, out)
				}
			}
			for _, want := range tt.wantOut {
				if !strings.Contains(string(out), want) {
					t.Errorf("with %s=%s the output lacks %q", modeEnv, tt.mode, want)
				}
			}
		})
	}
}
