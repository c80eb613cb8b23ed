package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Defaults of Config. gitlab-runner's own defaults are noted where they
// differ (they suit production, not tests).
const (
	// DefaultPrepareRetries is gitlab-runner's PreparationRetries.
	DefaultPrepareRetries = 3
	// DefaultPrepareRetryInterval is gitlab-runner's
	// PreparationRetryInterval.
	DefaultPrepareRetryInterval = 3 * time.Second
	// DefaultGracefulKillTimeout bounds the wait between SIGTERM and
	// SIGKILL (gitlab-runner: graceful_kill_timeout, 10 minutes).
	DefaultGracefulKillTimeout = 30 * time.Second
	// DefaultForceKillTimeout bounds the wait after SIGKILL
	// (gitlab-runner: force_kill_timeout, 10 seconds).
	DefaultForceKillTimeout = 10 * time.Second
	// DefaultExecTimeout bounds config_exec, prepare_exec and
	// cleanup_exec (gitlab-runner: *_exec_timeout, 1 hour).
	DefaultExecTimeout = 10 * time.Minute
	// DefaultBuildFailureExitCode and DefaultSystemFailureExitCode are
	// the codes gitlab-runner passes.
	DefaultBuildFailureExitCode  = 1
	DefaultSystemFailureExitCode = 2
)

// Config is a runner's [[runners]] entry with its [runners.custom] section,
// and the harness's own settings.
type Config struct {
	// ConfigExec, PrepareExec, RunExec and CleanupExec are the
	// executables of the four stages; only RunExec is required. Each
	// *Args holds the arguments placed before the ones gitlab-runner adds
	// (run_exec gets <script> <stage> appended).
	ConfigExec  string
	ConfigArgs  []string
	PrepareExec string
	PrepareArgs []string
	RunExec     string
	RunArgs     []string
	CleanupExec string
	CleanupArgs []string

	// BuildsDir and CacheDir are the runner's builds_dir and cache_dir;
	// config_exec may override them.
	BuildsDir, CacheDir string
	// Shell is the runner's shell; only "bash" is generated.
	Shell string

	// Env is the environment the runner passes to every stage before the
	// protocol variables (gitlab-runner passes its own). Nil means PATH
	// and HOME of the current process.
	Env []string
	// TempDir is the parent of each job's temporary directory (default
	// os.TempDir()).
	TempDir string

	// PrepareRetries is how often prepare_exec is tried (default 3).
	PrepareRetries int
	// PrepareRetryInterval is the pause before a retry (default 3s).
	PrepareRetryInterval time.Duration
	// GracefulKillTimeout is the time between SIGTERM and SIGKILL when a
	// stage is cancelled; ForceKillTimeout the wait after SIGKILL.
	GracefulKillTimeout, ForceKillTimeout time.Duration
	// ConfigExecTimeout, PrepareExecTimeout and CleanupExecTimeout bound
	// those stages (default DefaultExecTimeout each).
	ConfigExecTimeout, PrepareExecTimeout, CleanupExecTimeout time.Duration
	// BuildFailureExitCode and SystemFailureExitCode are the codes passed
	// to the stages (default 1 and 2, as gitlab-runner).
	BuildFailureExitCode, SystemFailureExitCode int

	// RunnerID, RunnerShortToken and RunnerDescription identify the
	// runner (defaults 1, "harness0", "test runner").
	RunnerID          int64
	RunnerShortToken  string
	RunnerDescription string
	// ServerURL is CI_SERVER_URL (default https://gitlab.example.com).
	ServerURL string

	// Hooks observe the job while it runs.
	Hooks Hooks
}

// Hooks are called synchronously from [Executor.Run]; they must return
// quickly (start a goroutine for longer work).
type Hooks struct {
	// StageStarted is called right after a stage process started.
	StageStarted func(StageInfo)
	// StageEnded is called when a stage process has ended.
	StageEnded func(StageResult)
	// Log is called with every job log entry as it is recorded.
	Log func(Entry)
}

// StageInfo describes a running stage process.
type StageInfo struct {
	// Stage is "config", "prepare", "cleanup" or the run sub-stage name.
	Stage string
	// Attempt counts prepare tries from 1 (1 for other stages).
	Attempt int
	// PID is the stage process's pid (also its process group id).
	PID int
	// Args is the full command line.
	Args []string
	// Env is the stage's environment.
	Env []string
}

// withDefaults validates c and fills in defaults. Errors name the field,
// the value and the rule.
func (c Config) withDefaults() (Config, error) {
	var errs []error
	if c.RunExec == "" {
		errs = append(errs, errors.New("config RunExec: must be set (gitlab-runner refuses a custom executor without run_exec)"))
	}
	for name, p := range map[string]string{"ConfigExec": c.ConfigExec, "PrepareExec": c.PrepareExec, "RunExec": c.RunExec, "CleanupExec": c.CleanupExec} {
		if p != "" && !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("config %s %q: must be an absolute path", name, p))
		}
	}
	if c.Shell == "" {
		c.Shell = "bash"
	}
	if c.Shell != "bash" {
		errs = append(errs, fmt.Errorf("config Shell %q: must be bash (the only shell the harness generates scripts for)", c.Shell))
	}
	if c.BuildsDir == "" {
		c.BuildsDir = "/builds"
	}
	if c.CacheDir == "" {
		c.CacheDir = "/cache"
	}
	if c.Env == nil {
		c.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	}
	defDur := func(name string, d *time.Duration, def time.Duration) {
		if *d == 0 {
			*d = def
		}
		if *d < 0 {
			errs = append(errs, fmt.Errorf("config %s %s: must not be negative", name, *d))
		}
	}
	defDur("PrepareRetryInterval", &c.PrepareRetryInterval, DefaultPrepareRetryInterval)
	defDur("GracefulKillTimeout", &c.GracefulKillTimeout, DefaultGracefulKillTimeout)
	defDur("ForceKillTimeout", &c.ForceKillTimeout, DefaultForceKillTimeout)
	defDur("ConfigExecTimeout", &c.ConfigExecTimeout, DefaultExecTimeout)
	defDur("PrepareExecTimeout", &c.PrepareExecTimeout, DefaultExecTimeout)
	defDur("CleanupExecTimeout", &c.CleanupExecTimeout, DefaultExecTimeout)
	if c.PrepareRetries == 0 {
		c.PrepareRetries = DefaultPrepareRetries
	}
	if c.PrepareRetries < 1 || c.PrepareRetries > 10 {
		errs = append(errs, fmt.Errorf("config PrepareRetries %d: must be in 1..10", c.PrepareRetries))
	}
	if c.BuildFailureExitCode == 0 {
		c.BuildFailureExitCode = DefaultBuildFailureExitCode
	}
	if c.SystemFailureExitCode == 0 {
		c.SystemFailureExitCode = DefaultSystemFailureExitCode
	}
	for name, code := range map[string]int{"BuildFailureExitCode": c.BuildFailureExitCode, "SystemFailureExitCode": c.SystemFailureExitCode} {
		if code < 1 || code > 255 {
			errs = append(errs, fmt.Errorf("config %s %d: must be in 1..255", name, code))
		}
	}
	if c.BuildFailureExitCode == c.SystemFailureExitCode {
		errs = append(errs, fmt.Errorf("config BuildFailureExitCode and SystemFailureExitCode are both %d: must differ", c.BuildFailureExitCode))
	}
	if c.RunnerID == 0 {
		c.RunnerID = 1
	}
	if c.RunnerID < 0 {
		errs = append(errs, fmt.Errorf("config RunnerID %d: must be positive", c.RunnerID))
	}
	if c.RunnerShortToken == "" {
		c.RunnerShortToken = "harness0"
	}
	if c.RunnerDescription == "" {
		c.RunnerDescription = "test runner"
	}
	if c.ServerURL == "" {
		c.ServerURL = "https://gitlab.example.com"
	}
	return c, errors.Join(errs...)
}
