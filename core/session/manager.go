package session

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
)

// Defaults and bounds of a session's life.
const (
	// DefaultIdleTimeout ends a session that no stage used for this long.
	DefaultIdleTimeout = 10 * time.Minute
	// MaxIdleTimeout bounds --session-idle-timeout.
	MaxIdleTimeout = pluginapi.MaxSessionIdleTimeout
	// LifetimeMargin is added to CI_JOB_TIMEOUT for the session's maximum
	// lifetime (cleanup runs after the job's last stage).
	LifetimeMargin = 15 * time.Minute
	// DefaultLifetime is the maximum lifetime when CI_JOB_TIMEOUT is unset.
	DefaultLifetime = 6 * time.Hour
	// StopTimeout bounds cleanup's stop of a session.
	StopTimeout = 5 * time.Second
)

// Environment variables a session needs.
const (
	EnvTmpdir   = "TMPDIR"
	EnvJobToken = jobenv.CustomPrefix + "CI_JOB_TOKEN"
)

// Options configure the sessions of a stage (its --session flags).
type Options struct {
	// Enabled turns sessions on (--session).
	Enabled bool
	// IdleTimeout is prepare's --session-idle-timeout; zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// Validate checks the options; errors name the flag, the value and the rule.
func (o Options) Validate() error {
	if o.IdleTimeout < 0 || (o.IdleTimeout > 0 && o.IdleTimeout < time.Second) || o.IdleTimeout > MaxIdleTimeout {
		return inputerr.New("--session-idle-timeout", o.IdleTimeout.String(), "must be between 1s and %s", MaxIdleTimeout)
	}
	return nil
}

// Manager handles the session of one job's VMI in one stage.
type Manager struct {
	store    *Store
	idle     time.Duration
	lifetime time.Duration
	log      hclog.Logger
}

// New returns the session manager of the job (TMPDIR and job token from
// lookup) for the VMI called vmi. Without a TMPDIR or a job token the job
// cannot have a session: New then returns nil and the reason.
func New(lookup jobenv.Lookup, vmi string, jobTimeout time.Duration, opts Options, log hclog.Logger) (*Manager, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	tmpdir, _ := lookup(EnvTmpdir)
	token, _ := lookup(EnvJobToken)
	if tmpdir == "" {
		return nil, fmt.Errorf("%s is not set", EnvTmpdir)
	}
	if token == "" {
		return nil, fmt.Errorf("%s is not set", EnvJobToken)
	}
	store, err := NewStore(tmpdir, token, vmi)
	if err != nil {
		return nil, err
	}
	idle := opts.IdleTimeout
	if idle == 0 {
		idle = DefaultIdleTimeout
	}
	lifetime := DefaultLifetime
	if jobTimeout > 0 {
		lifetime = min(jobTimeout+LifetimeMargin, pluginapi.MaxSessionLifetime)
	}
	return &Manager{store: store, idle: idle, lifetime: lifetime, log: log}, nil
}

// Store returns the manager's session file.
func (m *Manager) Store() *Store { return m.store }

// Keep detaches p (the transport plugin called name) and saves its
// session for the VMI with UID uid. If saving fails, the detached plugin is
// stopped again. Either way the job goes on; an error only means the later
// stages start their own plugin.
func (m *Manager) Keep(ctx context.Context, p *pluginapi.Plugin, name, uid string) error {
	st, err := p.Detach(ctx, pluginapi.DetachOptions{IdleTimeout: m.idle, MaxLifetime: m.lifetime})
	if err != nil {
		return fmt.Errorf("detach transport plugin %s: %s", name, pluginapi.ErrorMessage(err))
	}
	st.Name = name
	if err := m.store.Save(uid, st); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), StopTimeout)
		defer cancel()
		if serr := p.Stop(sctx); serr != nil {
			err = errors.Join(err, serr)
		}
		return err
	}
	m.log.Debug("transport session kept", "plugin", name, "pid", st.Pid, "idle_timeout", m.idle.String(), "max_lifetime", m.lifetime.String())
	return nil
}

// Attach reattaches to the job's session for the transport plugin called
// name, on the VMI with UID uid. Close the plugin when done (it only
// disconnects). An error says why there is no usable session; the caller
// starts a fresh plugin instead.
func (m *Manager) Attach(ctx context.Context, name, uid string) (*pluginapi.Plugin, error) {
	st, err := m.store.Load(uid)
	if err != nil {
		return nil, err
	}
	if st.Name != name {
		return nil, fmt.Errorf("the session is for transport plugin %q, the job uses %q", st.Name, name)
	}
	return pluginapi.Reattach(ctx, st, pluginapi.ReattachOptions{Logger: m.log})
}

// End stops the job's session, if any, and removes its file. It is
// idempotent; the session's VMI may already be gone.
func (m *Manager) End(ctx context.Context) error {
	st, err := m.store.Load("")
	var errs []error
	switch {
	case errors.Is(err, ErrNoSession):
	case err != nil:
		errs = append(errs, err)
	default:
		if serr := pluginapi.StopSession(ctx, st, pluginapi.ReattachOptions{Logger: m.log}); serr != nil {
			errs = append(errs, serr)
		} else {
			m.log.Debug("transport session stopped", "plugin", st.Name, "pid", st.Pid)
		}
	}
	if rerr := m.store.Remove(); rerr != nil {
		errs = append(errs, rerr)
	}
	return errors.Join(errs...)
}
