// Package testplugins builds the test plugin in
// core/pluginhost/testdata/testplugin, in variants, with `go build`, for
// the tests of the plugin host and of the `plugins` commands. Each variant
// is a real plugin binary with its own identity and sha256.
//
// Build runs the go command, so it needs a Go toolchain on PATH and a
// working directory inside this module (a test's directory is).
package testplugins

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
)

// pkg is the test plugin's import path.
const pkg = "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost/testdata/testplugin"

// Variant fixes a test plugin's identity and behaviour at build time. Empty
// fields keep the plugin's defaults (test-os, os, 1.0.0, bash, ok, none).
type Variant struct {
	Name    string // GetInfo name
	Kind    string // "os" or "transport"
	Version string // GetInfo version
	Shells  string // comma-separated shells of an OS plugin
	Health  string // "ok", "degraded" or "failing"
	// Mode is a misbehaviour: "crash-in-render", "stdout" (writes to stdout
	// before the handshake) or "api99" (serves plugin API 99 only).
	Mode string
}

// Standard returns the variants the tests use, by key.
func Standard() map[string]Variant {
	return map[string]Variant{
		"os":        {Name: "test-os", Kind: "os", Version: "1.0.0", Shells: "bash"},
		"os-new":    {Name: "test-os", Kind: "os", Version: "1.10.0", Shells: "bash"},
		"pwsh":      {Name: "test-win", Kind: "os", Version: "2.0.0", Shells: "pwsh"},
		"transport": {Name: "test-transport", Kind: "transport", Version: "0.3.0"},
		"crash":     {Name: "test-crash", Kind: "os", Version: "1.0.0", Mode: "crash-in-render"},
		"stdout":    {Name: "test-stdout", Kind: "os", Version: "1.0.0", Mode: "stdout"},
		"api99":     {Name: "test-api99", Kind: "os", Version: "9.9.0", Mode: "api99"},
		"failing":   {Name: "test-failing", Kind: "os", Version: "1.0.0", Health: "failing"},
		"degraded":  {Name: "test-degraded", Kind: "transport", Version: "1.0.0", Health: "degraded"},
	}
}

// Build builds every variant to dir/<key> and returns the binaries' paths
// by key.
func Build(ctx context.Context, dir string, variants map[string]Variant) (map[string]string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, fmt.Errorf("build test plugins: the go command is not on PATH (install Go 1.26): %w", err)
	}
	keys := make([]string, 0, len(variants))
	for k := range variants {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := map[string]string{}
	for _, k := range keys {
		v := variants[k]
		path := filepath.Join(dir, k)
		var ld []string
		for _, kv := range [][2]string{{"name", v.Name}, {"kind", v.Kind}, {"version", v.Version}, {"shells", v.Shells}, {"health", v.Health}, {"mode", v.Mode}} {
			if kv[1] != "" {
				ld = append(ld, fmt.Sprintf("-X main.%s=%s", kv[0], kv[1]))
			}
		}
		cmd := exec.CommandContext(ctx, goBin, "build", "-o", path, "-ldflags", strings.Join(ld, " "), pkg)
		if b, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build test plugin %s (%s): %w\n%s", k, cmd, err, b)
		}
		out[k] = path
	}
	return out, nil
}
