package sshtransport

import (
	"regexp"
	"strings"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// buildCommand prefixes command with a change to workdir in dialect's
// syntax (an empty workdir keeps the login directory). For the POSIX
// dialect with a non-empty pidToken, the shell first prints
// "<pidToken>:<its pid>" on a line of stderr (see pidFilter).
//
// A failing cd ends the shell ("|| exit") rather than guarding only the
// first line of a multi-line command, as "cd dir && command" would.
func buildCommand(command, workdir, dialect, pidToken string) (string, error) {
	if strings.TrimSpace(command) == "" {
		return "", pluginapi.InvalidInput("command", command, "must not be empty")
	}
	if strings.ContainsRune(command, 0) {
		return "", pluginapi.InvalidInput("command", command, "must not contain a NUL byte")
	}
	if strings.ContainsRune(workdir, 0) {
		return "", pluginapi.InvalidInput("workdir", workdir, "must not contain a NUL byte")
	}
	if dialect == DialectPowerShell {
		if workdir == "" {
			return command, nil
		}
		return "Set-Location -ErrorAction Stop -LiteralPath " + psQuote(workdir) + "; " + command, nil
	}
	var b strings.Builder
	if pidToken != "" {
		b.WriteString(`printf '%s:%s\n' ` + shQuote(pidToken) + ` "$$" >&2; `)
	}
	if workdir != "" {
		b.WriteString("cd " + shQuote(workdir) + " || exit; ")
	}
	b.WriteString(command)
	return b.String(), nil
}

// shQuote quotes s for a POSIX shell: inside single quotes nothing is
// special except the single quote itself, which ends the quoted part, is
// escaped with a backslash and starts a new quoted part.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// psQuote quotes s as a PowerShell verbatim string. PowerShell treats the
// typographic single quotes U+2018..U+201B like ', so each is doubled too.
func psQuote(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'', '\u2018', '\u2019', '\u201a', '\u201b':
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	b.WriteByte('\'')
	return b.String()
}

// validateEnv checks variable names (values are never quoted in errors:
// job variables may be secrets).
func validateEnv(env map[string]string) error {
	for name, value := range env {
		if !envNamePattern.MatchString(name) {
			return pluginapi.InvalidInput("env name", name, "must match %s", envNamePattern)
		}
		if strings.ContainsRune(value, 0) {
			return pluginapi.InvalidInput("env value of", name, "must not contain a NUL byte (value not shown)")
		}
	}
	return nil
}

// normalizeSignal accepts "TERM", "term" and "SIGTERM" alike and reports
// whether the result is one of the signals RFC 4254 lets a client send.
func normalizeSignal(name string) (string, bool) {
	n := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(name)), "SIG")
	switch n {
	case "ABRT", "ALRM", "FPE", "HUP", "ILL", "INT", "KILL", "PIPE", "QUIT", "SEGV", "TERM", "USR1", "USR2":
		return n, true
	}
	return n, false
}
