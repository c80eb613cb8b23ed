// Package logging builds the runner's own log: an hclog logger configured
// from --log-level and --log-format.
//
// GitLab Runner copies a custom executor's stdout into the job log, so the
// runner's log goes to stderr: callers pass os.Stderr (or, in a cobra
// command, cmd.ErrOrStderr()).
package logging

import (
	"fmt"
	"io"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// ParseLevel returns the hclog level named by s: trace, debug, info, warn or
// error (case-insensitive).
func ParseLevel(s string) (hclog.Level, error) {
	switch strings.ToLower(s) {
	case "trace":
		return hclog.Trace, nil
	case "debug":
		return hclog.Debug, nil
	case "info":
		return hclog.Info, nil
	case "warn":
		return hclog.Warn, nil
	case "error":
		return hclog.Error, nil
	}
	return hclog.NoLevel, fmt.Errorf("--log-level %q: must be one of trace, debug, info, warn, error", s)
}

// New returns a logger named name that writes to w at the given level (see
// [ParseLevel]) in the given format: "text" (human-readable lines) or
// "json" (one JSON object per line).
func New(w io.Writer, name, level, format string) (hclog.Logger, error) {
	lvl, err := ParseLevel(level)
	if err != nil {
		return nil, err
	}
	var json bool
	switch strings.ToLower(format) {
	case "text":
	case "json":
		json = true
	default:
		return nil, fmt.Errorf("--log-format %q: must be one of text, json", format)
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Output:     w,
		Level:      lvl,
		JSONFormat: json,
	}), nil
}
