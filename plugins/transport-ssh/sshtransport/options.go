package sshtransport

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// Option keys accepted in Target.Options.
const (
	OptKeepaliveInterval = "keepalive_interval"
	OptKeepaliveCountMax = "keepalive_count_max"
	OptKillGrace         = "kill_grace"
	OptConnectTimeout    = "connect_timeout"
	OptShellDialect      = "shell_dialect"
)

// Shell dialects for OptShellDialect.
const (
	DialectPOSIX      = "posix"
	DialectPowerShell = "powershell"
)

// Options are the settings a target carries in Target.Options.
type Options struct {
	// KeepaliveInterval is the time between keepalive requests.
	KeepaliveInterval time.Duration
	// KeepaliveCountMax is how many intervals may pass without an answer
	// before the connection is closed.
	KeepaliveCountMax int
	// KillGrace is how long a cancelled Exec waits after TERM before KILL.
	KillGrace time.Duration
	// ConnectTimeout bounds one dial + handshake + login attempt.
	ConnectTimeout time.Duration
	// ShellDialect is DialectPOSIX or DialectPowerShell.
	ShellDialect string
}

// DefaultOptions returns the options used for keys a target does not set.
func DefaultOptions() Options {
	return Options{
		KeepaliveInterval: 5 * time.Second,
		KeepaliveCountMax: 3,
		KillGrace:         2 * time.Second,
		ConnectTimeout:    10 * time.Second,
		ShellDialect:      DialectPOSIX,
	}
}

// ParseOptions validates m (Target.Options) and applies it over
// DefaultOptions. An unknown key or a bad value is an InvalidArgument error
// naming the option, the value and the rule.
func ParseOptions(m map[string]string) (Options, error) {
	o := DefaultOptions()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys) // report the same error for the same input
	for _, k := range keys {
		v := m[k]
		field := "option " + k
		var err error
		switch k {
		case OptKeepaliveInterval:
			o.KeepaliveInterval, err = parseDuration(field, v, 100*time.Millisecond, time.Hour)
		case OptKeepaliveCountMax:
			o.KeepaliveCountMax, err = parseInt(field, v, 1, 100)
		case OptKillGrace:
			o.KillGrace, err = parseDuration(field, v, 0, 10*time.Minute)
		case OptConnectTimeout:
			o.ConnectTimeout, err = parseDuration(field, v, 100*time.Millisecond, 10*time.Minute)
		case OptShellDialect:
			if v != DialectPOSIX && v != DialectPowerShell {
				err = pluginapi.InvalidInput(field, v, "must be %q or %q", DialectPOSIX, DialectPowerShell)
			}
			o.ShellDialect = v
		default:
			err = pluginapi.InvalidInput("option", k, "unknown transport-ssh option; known options: %s",
				strings.Join([]string{OptConnectTimeout, OptKeepaliveCountMax, OptKeepaliveInterval, OptKillGrace, OptShellDialect}, ", "))
		}
		if err != nil {
			return Options{}, err
		}
	}
	return o, nil
}

func parseDuration(field, v string, lo, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d < lo || d > hi {
		return 0, pluginapi.InvalidInput(field, v, "must be a Go duration (e.g. 5s, 500ms) between %s and %s", lo, hi)
	}
	return d, nil
}

func parseInt(field, v string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, pluginapi.InvalidInput(field, v, "must be an integer between %d and %d", lo, hi)
	}
	return n, nil
}

// String describes the options for logs.
func (o Options) String() string {
	return fmt.Sprintf("keepalive %s x%d, kill grace %s, connect timeout %s, dialect %s",
		o.KeepaliveInterval, o.KeepaliveCountMax, o.KillGrace, o.ConnectTimeout, o.ShellDialect)
}
