package pluginapi

import (
	"context"
	"time"
)

// SessionKey is the key of the Session service in the plugin set. Every
// plugin served by [ServeOS] or [ServeTransport] serves it.
const SessionKey = "session"

// Bounds of the timeouts a Detach call accepts.
const (
	MaxSessionIdleTimeout = 24 * time.Hour
	MaxSessionLifetime    = 7 * 24 * time.Hour
)

// SessionLiveness is an optional interface of a plugin implementation.
// While a detached plugin is idle, its watchdog calls Alive every few
// seconds; an error ends the plugin. A transport reports whether the guest
// it holds connections to is still there, so a session whose VM was deleted
// ends by itself even when the job's cleanup never runs.
type SessionLiveness interface {
	Alive(ctx context.Context) error
}

// DetachOptions bound the life of a detached plugin (a session).
type DetachOptions struct {
	// IdleTimeout ends the plugin once no call has been in flight for this
	// long. Required: between one second and MaxSessionIdleTimeout.
	IdleTimeout time.Duration
	// MaxLifetime ends the plugin this long after Detach whatever happens.
	// Required: between one second and MaxSessionLifetime.
	MaxLifetime time.Duration
}

// Validate checks the options; errors name the option, its value and the
// rule.
func (o DetachOptions) Validate() error {
	if o.IdleTimeout < time.Second || o.IdleTimeout > MaxSessionIdleTimeout {
		return InvalidInput("idle_timeout", o.IdleTimeout.String(), "must be between 1s and %s", MaxSessionIdleTimeout)
	}
	if o.MaxLifetime < time.Second || o.MaxLifetime > MaxSessionLifetime {
		return InvalidInput("max_lifetime", o.MaxLifetime.String(), "must be between 1s and %s", MaxSessionLifetime)
	}
	return nil
}

// SessionState is what a later process needs to reattach to a detached
// plugin, or to stop it. It holds the ephemeral mTLS material of the
// plugin's gRPC connection (the client key included): store it where only
// the job's own stages can read it. It never holds a guest credential.
type SessionState struct {
	// Format is the version of this structure (SessionStateFormat).
	Format int `json:"format"`
	// Name is the plugin's name (from GetInfo, as the caller recorded it).
	Name string `json:"name,omitempty"`
	// Path and SHA256 (hex) identify the plugin binary that was started.
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// APIVersion is the negotiated contract version.
	APIVersion int `json:"api_version"`
	// Network and Addr are the plugin's gRPC listener (a unix socket).
	Network string `json:"network"`
	Addr    string `json:"addr"`
	// Pid is the plugin's process id and StartTime its start time in clock
	// ticks since boot (/proc/<pid>/stat field 22), which tells a recycled
	// pid from the plugin.
	Pid       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	// ClientCert and ClientKey (PEM) authenticate the core to the plugin;
	// ServerCert (DER) is the plugin's certificate, the only one trusted.
	ClientCert []byte `json:"client_cert"`
	ClientKey  []byte `json:"client_key"`
	ServerCert []byte `json:"server_cert"`
}

// SessionStateFormat is the current SessionState.Format.
const SessionStateFormat = 1
