package main

import (
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/hack/docs/clidocs"
)

// updateCLIDocs makes TestCLIDocs rewrite docs/cli (go run ./hack/docs).
var updateCLIDocs = flag.Bool("update-cli-docs", false, "rewrite docs/cli from the command tree")

// cliDocsDir is the committed reference, relative to this package.
var cliDocsDir = filepath.Join("..", "..", "docs", "cli")

// TestCLIDocs fails when docs/cli is not what the command tree generates:
// run `make docs` (go run ./hack/docs) and commit the result.
func TestCLIDocs(t *testing.T) {
	root := newRoot(io.Discard, io.Discard)
	if *updateCLIDocs {
		if err := clidocs.Generate(root, cliDocsDir); err != nil {
			t.Fatal(err)
		}
		return
	}
	stale, err := clidocs.Stale(root, cliDocsDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) > 0 {
		t.Errorf("docs/cli is stale; run `make docs` (go run ./hack/docs) and commit:\n  %s", strings.Join(stale, "\n  "))
	}
}

// TestEveryFlagNamesItsVariable checks the environment variable is in each
// flag's usage, hence in --help and docs/cli.
func TestEveryFlagNamesItsVariable(t *testing.T) {
	walk(newRoot(io.Discard, io.Discard), func(c *cobra.Command) {
		c.LocalFlags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			if !strings.Contains(f.Usage, EnvName(f.Name)) {
				t.Errorf("%s --%s: usage %q does not name %s", c.CommandPath(), f.Name, f.Usage, EnvName(f.Name))
			}
		})
	})
}
