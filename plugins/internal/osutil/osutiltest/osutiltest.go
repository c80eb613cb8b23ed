// Package osutiltest holds test helpers shared by the first-party OS
// plugins' tests: fresh SSH keys, valid requests, required tools, the
// refusal and secret checks and the Render fuzz target.
package osutiltest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// KeyPair is an ed25519 SSH key.
type KeyPair struct {
	// PrivatePEM is the private key in OpenSSH PEM format.
	PrivatePEM []byte
	// Public is the public key as "ssh-ed25519 <base64>".
	Public string
}

// HostKey returns the pair as a RenderRequest host key.
func (k KeyPair) HostKey() *pluginv1.HostKey {
	return &pluginv1.HostKey{Type: ssh.KeyAlgoED25519, PrivateKey: k.PrivatePEM, PublicKey: k.Public}
}

// NewKeyPair generates a fresh ed25519 key pair.
func NewKeyPair(t testing.TB) KeyPair {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("generate ed25519 key: %v", err)
	}
	return FromKey(t, priv)
}

// FromKey encodes priv (an ed25519.PrivateKey or another key x/crypto/ssh
// can marshal) as a KeyPair.
func FromKey(t testing.TB, priv any) KeyPair {
	t.Helper()
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatalf("marshal private key: %v", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatalf("signer: %v", err)
	}
	return KeyPair{
		PrivatePEM: pem.EncodeToMemory(block),
		Public:     strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey()))),
	}
}

// SeedKeyPair returns the ed25519 key pair whose 32-byte seed repeats the
// byte seed: the same key on every call, for fuzz targets.
func SeedKeyPair(t testing.TB, seed byte) KeyPair {
	t.Helper()
	s := make([]byte, ed25519.SeedSize)
	for i := range s {
		s[i] = seed
	}
	return FromKey(t, ed25519.NewKeyFromSeed(s))
}

// RequireTool returns the path of tool, or fails the test (it never skips)
// naming the Debian package that provides it.
func RequireTool(t testing.TB, tool, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s is not on PATH: these tests need it; install the Debian package %s (apt-get install %s, or hack/install-deps.sh)", tool, debianPackage, debianPackage)
	}
	return path
}

// pyYAMLLoad loads YAML from stdin with PyYAML's safe loader (the C one
// when built) and prints it as JSON; json.dump fails on values JSON cannot
// hold (dates, sets), so they cannot pass for strings.
const pyYAMLLoad = `import json, sys, yaml
loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
json.dump(yaml.load(sys.stdin.buffer.read(), Loader=loader), sys.stdout)
`

// PyYAML loads doc with PyYAML, the YAML 1.1 loader cloud-init and
// Cloudbase-Init use, and returns the result as JSON values (maps, slices,
// strings, float64, bool, nil). It fails the test, naming the Debian
// packages, when python3 or python3-yaml is missing.
func PyYAML(t testing.TB, doc []byte) any {
	t.Helper()
	python := RequireTool(t, "python3", "python3")
	if out, err := exec.Command(python, "-c", "import yaml").CombinedOutput(); err != nil {
		t.Fatalf("python3 cannot import yaml: install the Debian package python3-yaml: %v\n%s", err, out)
	}
	cmd := exec.Command(python, "-c", pyYAMLLoad)
	cmd.Stdin = bytes.NewReader(doc)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("PyYAML cannot load the document: %v\n%s", err, stderr.String())
	}
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("PyYAML output: %v", err)
	}
	return v
}

// BuildVersioned builds the plugin main package pkg with
// -ldflags "-X main.version=<version>" into a temporary directory and
// returns the binary's path.
func BuildVersioned(t testing.TB, pkg, name, version string) string {
	t.Helper()
	gobin := RequireTool(t, "go", "golang (or a Go toolchain on PATH)")
	out := filepath.Join(t.TempDir(), pluginapi.BinaryPrefix+name)
	cmd := exec.Command(gobin, "build", "-o", out, "-ldflags", "-X main.version="+version, pkg)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -o %s -ldflags -X main.version=%s %s: %v\n%s", out, version, pkg, err, b)
	}
	return out
}

// LaunchInfo starts the plugin binary at path the way the core does
// (pinned sha256, go-plugin handshake) and returns its GetInfo answer.
func LaunchInfo(t testing.TB, path string) *pluginv1.PluginInfo {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	p, err := pluginapi.Launch(t.Context(), pluginapi.LaunchOptions{Path: path, SHA256: sum[:]})
	if err != nil {
		t.Fatalf("launch %s: %v", path, err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := info.GetInfo(t.Context())
	if err != nil {
		t.Fatalf("GetInfo: %v", err)
	}
	return resp
}
