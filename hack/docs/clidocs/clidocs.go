// Package clidocs writes the Markdown reference of a cobra command tree
// (one file per command, cobra/doc's layout) and compares a tree with the
// committed reference, so a stale docs/cli fails a test.
package clidocs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// Generate writes one Markdown file per available command of root into
// dir, creating dir, and removes *.md files there that no command
// produces any more. The output is deterministic: cobra's "Auto generated
// by spf13/cobra on <date>" footer is disabled on every command.
func Generate(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	disableAutoGenTag(root)
	if err := doc.GenMarkdownTree(root, dir); err != nil {
		return fmt.Errorf("generate markdown into %s: %w", dir, err)
	}
	want := map[string]bool{}
	walk(root, func(c *cobra.Command) { want[fileName(c)] = true })
	old, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return fmt.Errorf("list %s: %w", dir, err)
	}
	for _, f := range old {
		if !want[filepath.Base(f)] {
			if err := os.Remove(f); err != nil {
				return fmt.Errorf("remove stale %s: %w", f, err)
			}
		}
	}
	return nil
}

// Stale generates root's reference into a temporary directory and
// compares it with dir. It returns one line per file that is missing,
// extra or different in dir; none means dir is up to date.
func Stale(root *cobra.Command, dir string) ([]string, error) {
	tmp, err := os.MkdirTemp("", "clidocs-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := Generate(root, tmp); err != nil {
		return nil, err
	}
	fresh, err := readMD(tmp)
	if err != nil {
		return nil, err
	}
	committed, err := readMD(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for name, b := range fresh {
		c, ok := committed[name]
		switch {
		case !ok:
			out = append(out, name+": missing")
		case !bytes.Equal(b, c):
			out = append(out, name+": differs from the generated text")
		}
	}
	for name := range committed {
		if _, ok := fresh[name]; !ok {
			out = append(out, name+": no command produces it")
		}
	}
	slices.Sort(out)
	return out, nil
}

// readMD reads every *.md file of dir; a missing dir is empty.
func readMD(dir string) (map[string][]byte, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.md"))
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		out[filepath.Base(f)] = b
	}
	return out, nil
}

// disableAutoGenTag turns off the dated footer on every command.
func disableAutoGenTag(root *cobra.Command) {
	walk(root, func(c *cobra.Command) { c.DisableAutoGenTag = true })
}

// walk calls fn for every command cobra/doc documents.
func walk(c *cobra.Command, fn func(*cobra.Command)) {
	fn(c)
	for _, sub := range c.Commands() {
		if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
			continue
		}
		walk(sub, fn)
	}
}

// fileName is cobra/doc's file name for c.
func fileName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "_") + ".md"
}
