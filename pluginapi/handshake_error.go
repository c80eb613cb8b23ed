package pluginapi

import (
	"fmt"
	"strings"
)

// unrecognizedPrefix starts go-plugin's error when the first line a plugin
// prints on stdout is not its handshake line (go-plugin has no typed error
// for it). If go-plugin rewords it, handshakeError falls back to wrapping
// the original error and the Launch tests point at the change.
const unrecognizedPrefix = "Unrecognized remote plugin message: "

// maxQuotedLine bounds how much of a stray stdout line an error repeats.
const maxQuotedLine = 200

// handshakeError turns go-plugin's start errors into messages that name the
// usual causes: a plugin that writes to stdout before the handshake (which
// must be the first line there), or one that exits before it.
func handshakeError(path string, err error) error {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, unrecognizedPrefix)
	if !ok {
		return fmt.Errorf("launch plugin %s: %w", path, err)
	}
	line, _, _ := strings.Cut(rest, "\n")
	if line == "" {
		return fmt.Errorf("launch plugin %s: it exited before the go-plugin handshake, without printing anything on stdout (its stderr, in the log, says why)", path)
	}
	if len(line) > maxQuotedLine {
		line = line[:maxQuotedLine] + "..."
	}
	return fmt.Errorf("launch plugin %s: it printed %q on stdout before the go-plugin handshake; a plugin must not write to stdout: log through pluginapi.Logger, which writes to stderr", path, line)
}
