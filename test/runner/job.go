package runner

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Job is one CI job as the runner receives it from GitLab.
type Job struct {
	// ID is CI_JOB_ID (required, positive).
	ID int64
	// Name is CI_JOB_NAME (default "test-job"); Stage is CI_JOB_STAGE
	// (default "test").
	Name, Stage string
	// ProjectID is CI_PROJECT_ID (default 1); ProjectPath is
	// CI_PROJECT_PATH, "<namespace>/<project>" (default "group/project").
	ProjectID   int64
	ProjectPath string
	// ConcurrentID is CI_CONCURRENT_ID, the slot of this job in the
	// runner process (default 0).
	ConcurrentID int
	// Image is CI_JOB_IMAGE (the job's image: keyword; may be empty).
	Image string
	// Ref and SHA are CI_COMMIT_REF_NAME and CI_COMMIT_SHA (defaults
	// "main" and a fixed 40-hex SHA).
	Ref, SHA string
	// Timeout is CI_JOB_TIMEOUT; the job is cancelled when it passes
	// (default 1h).
	Timeout time.Duration
	// Token is CI_JOB_TOKEN (default: random). It is a secret.
	Token string

	// Variables are the job's own variables (.gitlab-ci.yml variables:,
	// project and group CI/CD variables), e.g. VM_CPU_REQUEST.
	Variables []Variable

	// BeforeScript and Script are the job's before_script and script
	// lines; they run in step_script. AfterScript runs in after_script.
	BeforeScript, Script, AfterScript []string
	// Files are written into CI_PROJECT_DIR by get_sources, in place of
	// a git checkout (path relative to the project directory -> content).
	Files map[string]string
	// Cache and Artifacts turn on the cache and artifact sub-stages.
	Cache, Artifacts bool
}

// Variable is a CI/CD variable.
type Variable struct {
	Key, Value string
	// Masked variables are secrets (the harness never masks output).
	Masked bool
	// File variables reach scripts as a path to a file holding Value.
	File bool
}

var (
	variableKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	projectPath = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*(/[a-z0-9][a-z0-9._-]*)+$`)
	commitSHA   = regexp.MustCompile(`^[0-9a-f]{40}$`)
)

const defaultSHA = "1f9fb8e7ca8e2b5fe3cbf7b9d1c3a4c5d6e7f809"

// withDefaults validates j and fills in defaults; errors name the field,
// the value and the rule.
func (j Job) withDefaults() (Job, error) {
	var errs []error
	if j.ID <= 0 {
		errs = append(errs, fmt.Errorf("job ID %d: must be positive", j.ID))
	}
	if j.Name == "" {
		j.Name = "test-job"
	}
	if j.Stage == "" {
		j.Stage = "test"
	}
	if j.ProjectID == 0 {
		j.ProjectID = 1
	}
	if j.ProjectID < 0 {
		errs = append(errs, fmt.Errorf("job ProjectID %d: must be positive", j.ProjectID))
	}
	if j.ProjectPath == "" {
		j.ProjectPath = "group/project"
	}
	if !projectPath.MatchString(j.ProjectPath) {
		errs = append(errs, fmt.Errorf("job ProjectPath %q: must match %s", j.ProjectPath, projectPath))
	}
	if j.ConcurrentID < 0 {
		errs = append(errs, fmt.Errorf("job ConcurrentID %d: must not be negative", j.ConcurrentID))
	}
	if j.Ref == "" {
		j.Ref = "main"
	}
	if j.SHA == "" {
		j.SHA = defaultSHA
	}
	if !commitSHA.MatchString(j.SHA) {
		errs = append(errs, fmt.Errorf("job SHA %q: must be 40 lower-case hex digits", j.SHA))
	}
	if j.Timeout == 0 {
		j.Timeout = time.Hour
	}
	if j.Timeout < time.Second {
		errs = append(errs, fmt.Errorf("job Timeout %s: must be at least 1s", j.Timeout))
	}
	if j.Token == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			errs = append(errs, fmt.Errorf("job Token: generate: %w", err))
		}
		j.Token = "glcbt-" + hex.EncodeToString(b)
	}
	seen := map[string]bool{}
	for i, v := range j.Variables {
		if !variableKey.MatchString(v.Key) {
			errs = append(errs, fmt.Errorf("job Variables[%d].Key %q: must match %s", i, v.Key, variableKey))
		}
		if seen[v.Key] {
			errs = append(errs, fmt.Errorf("job Variables[%d].Key %q: is given twice", i, v.Key))
		}
		seen[v.Key] = true
	}
	if len(j.Script) == 0 {
		errs = append(errs, errors.New("job Script: must have at least one line (GitLab refuses a job without script)"))
	}
	for p := range j.Files {
		if p == "" || path.IsAbs(p) || strings.HasPrefix(path.Clean(p), "..") || strings.ContainsAny(p, "\x00\n") {
			errs = append(errs, fmt.Errorf("job Files path %q: must be a relative path inside the project directory", p))
		}
	}
	return j, errors.Join(errs...)
}

// projectName is the last element of the project path.
func (j Job) projectName() string { return path.Base(j.ProjectPath) }

// projectDir is CI_PROJECT_DIR for builds dir b, as gitlab-runner builds
// it: shared builds dirs get the runner token and the concurrent project
// slot in the path.
func (j Job) projectDir(c Config, buildsDir string, shared bool) string {
	if shared {
		return path.Join(buildsDir, c.RunnerShortToken, strconv.Itoa(j.ConcurrentID), j.ProjectPath)
	}
	return path.Join(buildsDir, j.ProjectPath)
}

// predefined returns gitlab-runner's predefined variables for j, in a
// stable order. buildsDir and projectDir are empty in config_exec.
func (j Job) predefined(c Config, buildsDir, projectDir string) []Variable {
	id := strconv.FormatInt(j.ID, 10)
	projectURL := strings.TrimRight(c.ServerURL, "/") + "/" + j.ProjectPath
	return []Variable{
		{Key: "CI", Value: "true"},
		{Key: "GITLAB_CI", Value: "true"},
		{Key: "CI_SERVER_URL", Value: c.ServerURL},
		{Key: "CI_JOB_ID", Value: id},
		{Key: "CI_JOB_NAME", Value: j.Name},
		{Key: "CI_JOB_STAGE", Value: j.Stage},
		{Key: "CI_JOB_URL", Value: projectURL + "/-/jobs/" + id},
		{Key: "CI_JOB_TOKEN", Value: j.Token, Masked: true},
		{Key: "CI_JOB_TIMEOUT", Value: strconv.FormatInt(int64(j.Timeout/time.Second), 10)},
		{Key: "CI_JOB_IMAGE", Value: j.Image},
		{Key: "CI_REGISTRY_USER", Value: "gitlab-ci-token"},
		{Key: "CI_REGISTRY_PASSWORD", Value: j.Token, Masked: true},
		{Key: "CI_RUNNER_ID", Value: strconv.FormatInt(c.RunnerID, 10)},
		{Key: "CI_RUNNER_SHORT_TOKEN", Value: c.RunnerShortToken},
		{Key: "CI_RUNNER_DESCRIPTION", Value: c.RunnerDescription},
		{Key: "CI_CONCURRENT_ID", Value: strconv.Itoa(j.ConcurrentID)},
		{Key: "CI_CONCURRENT_PROJECT_ID", Value: strconv.Itoa(j.ConcurrentID)},
		{Key: "CI_PROJECT_ID", Value: strconv.FormatInt(j.ProjectID, 10)},
		{Key: "CI_PROJECT_NAME", Value: j.projectName()},
		{Key: "CI_PROJECT_PATH", Value: j.ProjectPath},
		{Key: "CI_PROJECT_NAMESPACE", Value: path.Dir(j.ProjectPath)},
		{Key: "CI_PROJECT_URL", Value: projectURL},
		{Key: "CI_PROJECT_DIR", Value: projectDir},
		{Key: "CI_BUILDS_DIR", Value: buildsDir},
		{Key: "CI_COMMIT_REF_NAME", Value: j.Ref},
		{Key: "CI_COMMIT_BRANCH", Value: j.Ref},
		{Key: "CI_COMMIT_SHA", Value: j.SHA},
		{Key: "CI_COMMIT_SHORT_SHA", Value: j.SHA[:8]},
		{Key: "CI_PIPELINE_ID", Value: strconv.FormatInt(1000+j.ID, 10)},
		{Key: "CI_SHARED_ENVIRONMENT", Value: "true"},
	}
}

// variables returns every job variable: predefined first, then the job's
// own (which override predefined ones of the same name, as in GitLab).
func (j Job) variables(c Config, buildsDir, projectDir string) []Variable {
	vars := j.predefined(c, buildsDir, projectDir)
	index := map[string]int{}
	for i, v := range vars {
		index[v.Key] = i
	}
	for _, v := range j.Variables {
		if i, ok := index[v.Key]; ok {
			vars[i] = v
			continue
		}
		index[v.Key] = len(vars)
		vars = append(vars, v)
	}
	return vars
}
