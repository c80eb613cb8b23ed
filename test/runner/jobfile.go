package runner

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// JobFile is a tiny job description for demos and tests: what
// .gitlab-ci.yml says about one job, plus the id GitLab would assign.
//
//	name: hello
//	id: 1001                      # CI_JOB_ID (default 1)
//	image: registry.example.com/ci/debian:12
//	timeout: 10m                  # CI_JOB_TIMEOUT (default 1h)
//	variables:
//	  VM_CPU_REQUEST: "1"
//	before_script: [...]
//	script:
//	  - uname -a
//	after_script: [...]
//
// Unknown keys are refused.
type JobFile struct {
	Name         string            `json:"name"`
	ID           int64             `json:"id,omitempty"`
	Image        string            `json:"image,omitempty"`
	Timeout      string            `json:"timeout,omitempty"`
	Variables    map[string]string `json:"variables,omitempty"`
	BeforeScript []string          `json:"before_script,omitempty"`
	Script       []string          `json:"script"`
	AfterScript  []string          `json:"after_script,omitempty"`
}

// maxJobFile bounds a job file's size.
const maxJobFile = 1 << 20

// LoadJobFile reads and parses a job file.
func LoadJobFile(path string) (Job, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Job{}, fmt.Errorf("job file: %w", err)
	}
	j, err := ParseJobFile(data)
	if err != nil {
		return Job{}, fmt.Errorf("job file %s: %w", path, err)
	}
	return j, nil
}

// ParseJobFile parses a job file (YAML) into a Job. Errors name the key,
// the value and the rule.
func ParseJobFile(data []byte) (Job, error) {
	if len(data) > maxJobFile {
		return Job{}, fmt.Errorf("is %d bytes: must be at most %d", len(data), maxJobFile)
	}
	var f JobFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return Job{}, fmt.Errorf("not a job file (keys: name, id, image, timeout, variables, before_script, script, after_script): %w", err)
	}
	var errs []error
	if f.Name == "" || len(f.Name) > 255 || strings.ContainsAny(f.Name, "\r\n") {
		errs = append(errs, fmt.Errorf("name %q: must be 1 to 255 characters on one line", f.Name))
	}
	if f.ID < 0 {
		errs = append(errs, fmt.Errorf("id %d: must be positive", f.ID))
	}
	if f.ID == 0 {
		f.ID = 1
	}
	var timeout time.Duration
	if f.Timeout != "" {
		d, err := time.ParseDuration(f.Timeout)
		if err != nil || d < time.Second {
			errs = append(errs, fmt.Errorf("timeout %q: must be a duration of at least 1s, such as 10m", f.Timeout))
		}
		timeout = d
	}
	if len(f.Script) == 0 {
		errs = append(errs, errors.New("script: must list at least one command"))
	}
	for key, lines := range map[string][]string{"before_script": f.BeforeScript, "script": f.Script, "after_script": f.AfterScript} {
		for i, l := range lines {
			if strings.TrimSpace(l) == "" {
				errs = append(errs, fmt.Errorf("%s[%d]: must not be empty", key, i))
			}
		}
	}
	keys := make([]string, 0, len(f.Variables))
	for k := range f.Variables {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var vars []Variable
	for _, k := range keys {
		if !variableKey.MatchString(k) {
			errs = append(errs, fmt.Errorf("variables key %q: must match %s", k, variableKey))
			continue
		}
		vars = append(vars, Variable{Key: k, Value: f.Variables[k]})
	}
	if err := errors.Join(errs...); err != nil {
		return Job{}, err
	}
	return Job{
		ID: f.ID, Name: f.Name, Image: f.Image, Timeout: timeout, Variables: vars,
		BeforeScript: f.BeforeScript, Script: f.Script, AfterScript: f.AfterScript,
	}, nil
}
