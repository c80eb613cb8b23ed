package pluginhost

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/logging"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// defaultPath is the plugins' PATH when the core has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// maxStartTimeout bounds Options.StartTimeout.
const maxStartTimeout = 10 * time.Minute

// ErrClosed is returned by Open and Probe once the host is closed.
var ErrClosed = errors.New("plugin host is closed: the command is ending")

// Options configures a Host.
type Options struct {
	// Dir is the plugin directory (see ResolveDir).
	Dir string
	// Logger receives the host's messages, go-plugin's, and the plugins'
	// own log lines. Nil discards them.
	Logger hclog.Logger
	// StartTimeout bounds starting a plugin up to the end of the
	// handshake, and separately each GetInfo, Ping and Health call the
	// host makes. Zero means pluginapi.DefaultStartTimeout.
	StartTimeout time.Duration
	// PluginLogLevel is passed to plugins in pluginapi.LogLevelEnv:
	// trace, debug, info, warn or error. Empty means info.
	PluginLogLevel string
}

// Host starts plugins and remembers them until Close. Its methods are safe
// for concurrent use.
type Host struct {
	dir          string
	log          hclog.Logger
	startTimeout time.Duration
	logLevel     string

	mu      sync.Mutex
	closed  bool
	started map[*pluginapi.Plugin]struct{}
}

// New returns a Host for the plugins in opts.Dir.
func New(opts Options) (*Host, error) {
	if opts.Dir == "" {
		return nil, errors.New("plugin host: a plugin directory is required")
	}
	if opts.StartTimeout < 0 || opts.StartTimeout > maxStartTimeout {
		return nil, fmt.Errorf("start timeout %q: must be between 0 (default %s) and %s", opts.StartTimeout, pluginapi.DefaultStartTimeout, maxStartTimeout)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = pluginapi.DefaultStartTimeout
	}
	if opts.PluginLogLevel == "" {
		opts.PluginLogLevel = "info"
	}
	lvl, err := logging.ParseLevel(opts.PluginLogLevel)
	if err != nil {
		return nil, fmt.Errorf("plugin log level: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	return &Host{
		dir:          opts.Dir,
		log:          opts.Logger,
		startTimeout: opts.StartTimeout,
		logLevel:     lvl.String(),
		started:      map[*pluginapi.Plugin]struct{}{},
	}, nil
}

// Dir returns the plugin directory.
func (h *Host) Dir() string { return h.dir }

// StartTimeout returns the bound on starting a plugin and on each call the
// host makes.
func (h *Host) StartTimeout() time.Duration { return h.startTimeout }

// Env returns the whole environment a plugin gets (go-plugin adds its
// handshake variables): PATH and the plugin log level. Nothing else of the
// core's environment reaches a plugin: no KUBECONFIG, no CUSTOM_ENV_* job
// variables, no tokens.
func (h *Host) Env() []string {
	path := os.Getenv("PATH")
	if path == "" {
		path = defaultPath
	}
	return []string{"PATH=" + path, pluginapi.LogLevelEnv + "=" + h.logLevel}
}

// Close ends every plugin the host started and still tracks, and makes
// later Open and Probe calls fail with ErrClosed. A plugin that was
// detached (see [Host.OpenDetachable]) is not ended: Close only drops the
// connection to it. It is safe to call more
// than once and from any goroutine, e.g. from a signal handler or
// context.AfterFunc(ctx, h.Close); it returns once the plugins are reaped.
func (h *Host) Close() {
	h.mu.Lock()
	h.closed = true
	started := make([]*pluginapi.Plugin, 0, len(h.started))
	for p := range h.started {
		started = append(started, p)
	}
	clear(h.started)
	h.mu.Unlock()

	var wg sync.WaitGroup
	for _, p := range started {
		wg.Go(p.Close)
	}
	wg.Wait()
}

// Running returns the number of started plugins not yet closed.
func (h *Host) Running() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.started)
}

// startMode is how a plugin process is started beyond its binary and
// digest.
type startMode struct {
	// detachable and socketDir are pluginapi.LaunchOptions.Detachable and
	// SocketDir.
	detachable bool
	socketDir  string
}

// launch starts the binary at path pinned to sha256Hex and tracks it.
func (h *Host) launch(ctx context.Context, path, sha256Hex string, mode startMode) (*pluginapi.Plugin, error) {
	sum, err := hex.DecodeString(sha256Hex)
	if err != nil {
		return nil, fmt.Errorf("launch plugin %s: sha256 %q: %w", path, sha256Hex, err)
	}
	if err := h.checkOpen(); err != nil {
		return nil, err
	}
	p, err := pluginapi.Launch(ctx, pluginapi.LaunchOptions{
		Path:         path,
		SHA256:       sum,
		Logger:       h.log,
		StartTimeout: h.startTimeout,
		Env:          h.Env(),
		Detachable:   mode.detachable,
		SocketDir:    mode.socketDir,
	})
	if err != nil {
		return nil, classifyLaunch(path, err, h.startTimeout)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		p.Close()
		return nil, ErrClosed
	}
	h.started[p] = struct{}{}
	h.mu.Unlock()
	return p, nil
}

func (h *Host) checkOpen() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrClosed
	}
	return nil
}

// release closes p and forgets it.
func (h *Host) release(p *pluginapi.Plugin) {
	h.mu.Lock()
	delete(h.started, p)
	h.mu.Unlock()
	p.Close()
}

// Open starts the locked plugin e:
//
//  1. it checks that the file exists and is a regular file (a stat, no
//     read);
//  2. it launches it pinned to the locked sha256: go-plugin's SecureConfig
//     hashes the file right before exec and refuses it if the digest
//     differs (StatusChecksumMismatch). Only on that refusal does Open
//     hash the file itself, to name both sums in the error; a successful
//     start reads the binary once, not twice;
//  3. it calls GetInfo and refuses a plugin whose name, kind, version or
//     API versions differ from the lock (a binary swapped behind a
//     symlink), or that negotiated an API version the lock does not list.
//
// The plugin stays tracked by h until its Close or h.Close. Errors are
// *Error values saying what to do.
func (h *Host) Open(ctx context.Context, e Entry) (*Plugin, error) {
	return h.open(ctx, e, startMode{})
}

// open is Open with the process started as mode says.
func (h *Host) open(ctx context.Context, e Entry, mode startMode) (*Plugin, error) {
	if err := e.Validate(); err != nil {
		return nil, fmt.Errorf("open plugin %s: invalid lock entry: %w", e.File, err)
	}
	path := filepath.Join(h.dir, e.File)
	if err := checkLockedFile(path); err != nil {
		return nil, err
	}
	p, err := h.launch(ctx, path, e.SHA256, mode)
	if err != nil {
		return nil, mismatchDetail(path, e.SHA256, err)
	}
	info, err := h.getInfo(ctx, p)
	if err != nil {
		h.release(p)
		return nil, err
	}
	if err := checkInfo(path, e, info, p.APIVersion()); err != nil {
		h.release(p)
		return nil, err
	}
	h.log.Debug("plugin started", "plugin", e.Name, "version", e.Version, "file", path, "api", p.APIVersion(), "pid", p.Pid(), "detachable", mode.detachable)
	return &Plugin{Plugin: p, host: h, entry: e, info: info}, nil
}

// checkLockedFile refuses a locked plugin file that is gone (StatusMissing)
// or is not a regular file (StatusNotRegular) before anything starts it.
func checkLockedFile(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return &Error{Status: StatusMissing, File: path, Err: err, Hint: "reinstall the plugin, or " + relockHint}
	case err != nil:
		return &Error{Status: StatusNotRegular, File: path, Err: err, Hint: "reinstall the plugin, or " + relockHint}
	case !fi.Mode().IsRegular():
		return &Error{Status: StatusNotRegular, File: path, Err: fmt.Errorf("is a %s, not a regular file", fileType(fi.Mode())), Hint: "reinstall the plugin, or " + relockHint}
	}
	return nil
}

// mismatchDetail completes a launch refused by go-plugin's checksum check
// with the file's actual sha256, so the admin sees both digests. It hashes
// the file only on this failure path. Any other error, or a file that
// matches the lock again by the time it is hashed (it changed twice during
// the start), is returned as it is.
func mismatchDetail(path, locked string, err error) error {
	if StatusOf(err) != StatusChecksumMismatch {
		return err
	}
	actual, herr := FileSHA256(path)
	if herr != nil || actual == locked {
		return err
	}
	return checksumError(path, actual, locked)
}

// OpenByName reads the lock, selects the plugin of kind and name (see
// [Lock.ByName]) and opens it.
func (h *Host) OpenByName(ctx context.Context, kind Kind, name string) (*Plugin, error) {
	l, err := ReadLock(h.dir)
	if err != nil {
		return nil, err
	}
	e, err := l.ByName(h.log, kind, name)
	if err != nil {
		return nil, fmt.Errorf("plugin directory %s: %w", h.dir, err)
	}
	return h.Open(ctx, e)
}

// OpenDetachable is [Host.OpenByName] for a plugin that may become a
// session: it starts the plugin with pluginapi.LaunchOptions.Detachable
// and its unix socket in socketDir (an existing directory, given as an
// absolute path; a session keeps it in a 0700 directory of the job), with
// every check and error of [Host.Open].
//
// The plugin is tracked like any other. Until it is detached
// ([pluginapi.Plugin.Detach], promoted on *Plugin), its Close and h.Close
// end it, so a stage that fails before keeping its session leaves nothing
// running. Once detached, they only drop this process's connection and the
// plugin runs on until it is stopped ([pluginapi.StopSession]) or its own
// idle timeout or lifetime ends it.
func (h *Host) OpenDetachable(ctx context.Context, kind Kind, name, socketDir string) (*Plugin, error) {
	if err := checkSocketDir(socketDir); err != nil {
		return nil, fmt.Errorf("open plugin %s detachable: %w", name, err)
	}
	l, err := ReadLock(h.dir)
	if err != nil {
		return nil, err
	}
	e, err := l.ByName(h.log, kind, name)
	if err != nil {
		return nil, fmt.Errorf("plugin directory %s: %w", h.dir, err)
	}
	return h.open(ctx, e, startMode{detachable: true, socketDir: socketDir})
}

// checkSocketDir refuses a socket directory that is not an absolute path
// to an existing directory.
func checkSocketDir(dir string) error {
	if !filepath.IsAbs(dir) {
		return fmt.Errorf("socket dir %q: must be an absolute path", dir)
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("socket dir %q: must be an existing directory: it does not exist", dir)
	case err != nil:
		return fmt.Errorf("socket dir %q: must be an existing directory: %w", dir, err)
	case !fi.IsDir():
		what := "regular file"
		if !fi.Mode().IsRegular() {
			what = fileType(fi.Mode())
		}
		return fmt.Errorf("socket dir %q: must be an existing directory: it is a %s", dir, what)
	}
	return nil
}

// OpenForShell reads the lock, selects the OS plugin serving shell (see
// [Lock.ForShell]) and opens it.
func (h *Host) OpenForShell(ctx context.Context, shell string) (*Plugin, error) {
	l, err := ReadLock(h.dir)
	if err != nil {
		return nil, err
	}
	e, err := l.ForShell(h.log, shell)
	if err != nil {
		return nil, fmt.Errorf("plugin directory %s: %w", h.dir, err)
	}
	return h.Open(ctx, e)
}

// getInfo calls GetInfo within the start timeout.
func (h *Host) getInfo(ctx context.Context, p *pluginapi.Plugin) (*pluginv1.PluginInfo, error) {
	info, err := p.Info()
	if err != nil {
		return nil, &Error{Status: StatusCallFailed, File: p.Path(), Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, h.startTimeout)
	defer cancel()
	pi, err := info.GetInfo(ctx)
	if err != nil {
		return nil, &Error{Status: StatusCallFailed, File: p.Path(), Err: fmt.Errorf("GetInfo: %w", err), Hint: "the plugin started but does not answer GetInfo; check its log lines above"}
	}
	return pi, nil
}

// checksumError is the refusal of a file whose digest left the lock.
func checksumError(path, actual, locked string) error {
	return &Error{
		Status: StatusChecksumMismatch,
		File:   path,
		Err:    fmt.Errorf("its sha256 is %s but %s pins %s", actual, LockFileName, locked),
		Hint:   "the binary changed since it was locked; " + relockHint,
	}
}

// checkInfo compares a started plugin's GetInfo with its lock entry.
func checkInfo(path string, e Entry, info *pluginv1.PluginInfo, negotiated int) error {
	got, err := EntryFromInfo(e.File, e.SHA256, info)
	if err != nil {
		return &Error{Status: StatusInvalidInfo, File: path, Err: err, Hint: "the plugin breaks the plugin contract; report it to its author"}
	}
	if got.Kind != e.Kind {
		return &Error{Status: StatusKindMismatch, File: path,
			Err:  fmt.Errorf("it reports kind %s but %s records kind %s for it", got.Kind, LockFileName, e.Kind),
			Hint: relockHint}
	}
	if got.Name != e.Name || got.Version != e.Version || !slices.Equal(sorted(got.APIVersions), sorted(e.APIVersions)) {
		return &Error{Status: StatusInfoMismatch, File: path,
			Err: fmt.Errorf("it reports %s %s (API %v) but %s records %s %s (API %v) for it",
				got.Name, got.Version, got.APIVersions, LockFileName, e.Name, e.Version, e.APIVersions),
			Hint: "the file was replaced by another plugin; " + relockHint}
	}
	if !e.SupportsAPI(negotiated) {
		return &Error{Status: StatusAPIUnsupported, File: path,
			Err:  fmt.Errorf("it negotiated API version %d, which its GetInfo does not list (%v)", negotiated, e.APIVersions),
			Hint: "the plugin breaks the plugin contract; report it to its author"}
	}
	return nil
}

func sorted(v []int) []int {
	v = slices.Clone(v)
	slices.Sort(v)
	return v
}

// Probe starts the binary of c pinned to its current sha256, calls GetInfo,
// validates the answer and closes the plugin again. It is how the admin
// commands learn about plugins that are not (or no longer) locked. The
// result carries the GetInfo answer whenever the plugin gave one, even
// with an error.
func (h *Host) Probe(ctx context.Context, c Candidate) (ProbeResult, error) {
	res := ProbeResult{}
	if !c.Startable() {
		return res, &Error{Status: c.Status, File: c.Path, Err: c.Err}
	}
	sum, err := FileSHA256(c.Path)
	if err != nil {
		return res, &Error{Status: StatusNotRegular, File: c.Path, Err: err}
	}
	res.SHA256 = sum
	p, err := h.launch(ctx, c.Path, sum, startMode{})
	if err != nil {
		return res, err
	}
	defer h.release(p)
	res.APIVersion = p.APIVersion()
	res.Info, err = h.getInfo(ctx, p)
	if err != nil {
		return res, err
	}
	res.Entry, err = EntryFromInfo(c.File, sum, res.Info)
	if err != nil {
		return res, &Error{Status: StatusInvalidInfo, File: c.Path, Err: err, Hint: "the plugin breaks the plugin contract; report it to its author"}
	}
	if !res.Entry.SupportsAPI(res.APIVersion) {
		return res, &Error{Status: StatusInvalidInfo, File: c.Path,
			Err:  fmt.Errorf("it negotiated API version %d, which its GetInfo does not list (%v)", res.APIVersion, res.Entry.APIVersions),
			Hint: "the plugin breaks the plugin contract; report it to its author"}
	}
	return res, nil
}

// ProbeResult is what Probe learned about a binary.
type ProbeResult struct {
	// SHA256 is the file's digest when it was started.
	SHA256 string
	// APIVersion is the negotiated plugin API version.
	APIVersion int
	// Info is the GetInfo answer, if any.
	Info *pluginv1.PluginInfo
	// Entry is the lock entry built from Info; valid only without error.
	Entry Entry
}
