package main

import (
	"context"
	"fmt"
	"os"
)

// Alive implements pluginapi.SessionLiveness: with TESTPLUGIN_ALIVE_FILE
// set, the plugin is alive while that file exists, so a session test can
// make its target "go away" by removing the file.
func (envPlugin) Alive(context.Context) error {
	f := os.Getenv("TESTPLUGIN_ALIVE_FILE")
	if f == "" {
		return nil
	}
	if _, err := os.Stat(f); err != nil {
		return fmt.Errorf("target gone: %w", err)
	}
	return nil
}
