package pluginhost

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// probeParallelism bounds how many binaries the admin commands start at
// once.
const probeParallelism = 4

// Report is one row of `plugins list`.
type Report struct {
	// Name comes from GetInfo when the plugin answered, else from
	// plugins.lock, else from the file name.
	Name string `json:"name"`
	// Kind, Version and APIVersions come from GetInfo or plugins.lock.
	Kind        Kind   `json:"kind,omitempty"`
	Version     string `json:"version,omitempty"`
	APIVersions []int  `json:"apiVersions,omitempty"`
	// Path is the binary's path.
	Path string `json:"path"`
	// SHA256 is the file's current digest (empty if it cannot be read).
	SHA256 string `json:"sha256,omitempty"`
	// LockedSHA256 is the digest plugins.lock pins, if it lists the file.
	LockedSHA256 string `json:"lockedSha256,omitempty"`
	Status       Status `json:"status"`
	// Error says what is wrong and what to do; empty when Status is ok.
	Error string `json:"error,omitempty"`
}

// Inspect reports on every plugin binary in the directory and every file
// plugins.lock lists but the directory lacks, sorted by path. It starts
// each startable binary (see [Host.Probe]) to learn its GetInfo and to
// detect non-plugins. A missing plugins.lock makes every plugin
// not-locked; an invalid one is returned as the error, together with the
// rows computed as if there were no lock.
func (h *Host) Inspect(ctx context.Context) ([]Report, error) {
	cands, err := Discover(h.dir)
	if err != nil {
		return nil, err
	}
	lock, lockErr := ReadLock(h.dir)
	if errors.Is(lockErr, fs.ErrNotExist) {
		lockErr = nil
	}
	if lock == nil {
		lock = &Lock{APIVersion: LockAPIVersion}
	}
	probes := h.probeAll(ctx, cands)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list plugins: %w", err)
	}
	var rows []Report
	seen := map[string]bool{}
	for i, c := range cands {
		seen[c.File] = true
		rows = append(rows, inspectRow(c, lock, probes[i]))
	}
	for _, e := range lock.Plugins {
		if seen[e.File] {
			continue
		}
		rows = append(rows, Report{
			Name: e.Name, Kind: e.Kind, Version: e.Version, APIVersions: e.APIVersions,
			Path: filepath.Join(h.dir, e.File), LockedSHA256: e.SHA256, Status: StatusMissing,
			Error: fmt.Sprintf("%s lists %s but the plugin directory has no such file; reinstall it, or %s", LockFileName, e.File, relockHint),
		})
	}
	slices.SortFunc(rows, func(a, b Report) int { return strings.Compare(a.Path, b.Path) })
	return rows, lockErr
}

// probeOutcome is Probe's result for one candidate.
type probeOutcome struct {
	res ProbeResult
	err error
}

// probeAll probes the startable candidates, a few at a time.
func (h *Host) probeAll(ctx context.Context, cands []Candidate) []probeOutcome {
	out := make([]probeOutcome, len(cands))
	sem := make(chan struct{}, probeParallelism)
	var wg sync.WaitGroup
	for i, c := range cands {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i].res, out[i].err = h.Probe(ctx, c)
		})
	}
	wg.Wait()
	return out
}

// inspectRow combines discovery, probe and lock into one row.
func inspectRow(c Candidate, lock *Lock, po probeOutcome) Report {
	r := Report{Name: c.Name, Path: c.Path, SHA256: po.res.SHA256}
	locked, isLocked := lock.Entry(c.File)
	if isLocked {
		r.Name, r.Kind, r.Version, r.APIVersions = locked.Name, locked.Kind, locked.Version, locked.APIVersions
		r.LockedSHA256 = locked.SHA256
	}
	if info := po.res.Info; info != nil {
		r.Name, r.Version = info.GetName(), info.GetVersion()
		if k, err := KindFromProto(info.GetKind()); err == nil {
			r.Kind = k
		}
		r.APIVersions = nil
		for _, v := range info.GetApiVersions() {
			r.APIVersions = append(r.APIVersions, int(v))
		}
	}
	var err error
	switch {
	case po.err != nil:
		err = po.err
	case !isLocked:
		err = &Error{Status: StatusNotLocked, File: c.Path, Err: fmt.Errorf("%s does not list it", LockFileName),
			Hint: "run `gitlab-runner-kubevirt plugins lock` to allow it"}
	case po.res.SHA256 != locked.SHA256:
		err = checksumError(c.Path, po.res.SHA256, locked.SHA256)
	default:
		err = checkInfo(c.Path, locked, po.res.Info, po.res.APIVersion)
	}
	r.Status = StatusOK
	if err != nil {
		r.Status = StatusOf(err)
		r.Error = err.Error()
	}
	return r
}

// BuildLock starts every plugin binary in the directory, calls GetInfo and
// returns the lock that pins them all, plus one report per binary. A binary
// that is not a valid plugin makes it fail, naming every such binary,
// unless skipInvalid is set: then it is left out of the lock (and its
// report says so). It does not write the lock: see [WriteLock].
func (h *Host) BuildLock(ctx context.Context, skipInvalid bool) (*Lock, []Report, error) {
	cands, err := Discover(h.dir)
	if err != nil {
		return nil, nil, err
	}
	probes := h.probeAll(ctx, cands)
	lock := &Lock{APIVersion: LockAPIVersion, Plugins: []Entry{}}
	var rows []Report
	var bad []error
	for i, c := range cands {
		po := probes[i]
		r := Report{Name: c.Name, Path: c.Path, SHA256: po.res.SHA256, Status: StatusOK}
		if po.err == nil && !po.res.Entry.usable() {
			po.err = &Error{Status: StatusAPIUnsupported, File: c.Path,
				Err:  fmt.Errorf("it serves plugin API %v; this gitlab-runner-kubevirt speaks %v", po.res.Entry.APIVersions, supportedAPIVersions()),
				Hint: "install a build of the plugin for a supported API, or upgrade gitlab-runner-kubevirt"}
		}
		if po.err != nil {
			if err := ctx.Err(); err != nil {
				return nil, nil, fmt.Errorf("lock plugins: %w", err)
			}
			r.Status, r.Error = StatusOf(po.err), po.err.Error()
			rows = append(rows, r)
			bad = append(bad, po.err)
			continue
		}
		e := po.res.Entry
		r.Name, r.Kind, r.Version, r.APIVersions, r.LockedSHA256 = e.Name, e.Kind, e.Version, e.APIVersions, e.SHA256
		lock.Plugins = append(lock.Plugins, e)
		rows = append(rows, r)
	}
	if len(bad) > 0 && !skipInvalid {
		return nil, rows, fmt.Errorf("refusing to write %s: %d file(s) in %s are not usable plugins; remove them or pass --skip-invalid to lock only the valid ones:\n%w",
			LockFileName, len(bad), h.dir, errors.Join(bad...))
	}
	if err := lock.Validate(); err != nil {
		return nil, rows, fmt.Errorf("lock plugins: %w", err)
	}
	return lock, rows, nil
}

// HealthReport is one line of `plugins health`.
type HealthReport struct {
	Entry Entry `json:"entry"`
	// Path is the binary's path.
	Path string `json:"path"`
	// Status is ok, degraded, unhealthy, or why the plugin could not be
	// asked (checksum-mismatch, not-a-plugin, ...).
	Status Status `json:"status"`
	// Description is the plugin's own Health description.
	Description string `json:"description,omitempty"`
	// Error says what failed and what to do.
	Error string `json:"error,omitempty"`
}

// Failed reports whether the plugin cannot be used: anything but ok or
// degraded.
func (r HealthReport) Failed() bool { return r.Status != StatusOK && r.Status != StatusDegraded }

// CheckHealth opens every plugin plugins.lock lists (checksum, launch,
// GetInfo against the lock), pings it and calls Health, one plugin at a
// time, closing each before the next. It fails only if the lock cannot be
// read; per-plugin failures are in the reports.
func (h *Host) CheckHealth(ctx context.Context) ([]HealthReport, error) {
	lock, err := ReadLock(h.dir)
	if err != nil {
		return nil, err
	}
	var out []HealthReport
	for _, e := range lock.Plugins {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("plugins health: %w", err)
		}
		out = append(out, h.health(ctx, e))
	}
	return out, nil
}

// health checks one locked plugin.
func (h *Host) health(ctx context.Context, e Entry) HealthReport {
	r := HealthReport{Entry: e, Path: filepath.Join(h.dir, e.File)}
	fail := func(err error) HealthReport {
		r.Status, r.Error = StatusOf(err), err.Error()
		return r
	}
	p, err := h.Open(ctx, e)
	if err != nil {
		return fail(err)
	}
	defer p.Close()
	if err := p.Ping(); err != nil {
		return fail(&Error{Status: StatusCallFailed, File: r.Path, Err: err})
	}
	info, err := p.Info()
	if err != nil {
		return fail(&Error{Status: StatusCallFailed, File: r.Path, Err: err})
	}
	cctx, cancel := context.WithTimeout(ctx, h.startTimeout)
	defer cancel()
	hr, err := info.Health(cctx)
	if err != nil {
		return fail(&Error{Status: StatusCallFailed, File: r.Path, Err: err})
	}
	r.Description = hr.GetDescription()
	switch hr.GetState() {
	case pluginv1.HealthResponse_STATE_OK:
		r.Status = StatusOK
	case pluginv1.HealthResponse_STATE_DEGRADED:
		r.Status = StatusDegraded
	default:
		r.Status = StatusUnhealthy
		r.Error = fmt.Sprintf("plugin %s: Health answered %s: %s", r.Path, hr.GetState(), hr.GetDescription())
	}
	return r
}
