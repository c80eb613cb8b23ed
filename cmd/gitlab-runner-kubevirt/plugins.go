package main

import "github.com/spf13/cobra"

// newPluginsCmd is a placeholder replaced by the plugin host work.
func newPluginsCmd(g *globalOptions) *cobra.Command {
	_ = g
	return &cobra.Command{Use: "plugins", Short: "Inspect and pin plugins"}
}
