package runner

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// jobResponse is the subset of GitLab's job payload (POST
// /api/v4/jobs/request) that gitlab-runner writes to JOB_RESPONSE_FILE.
type jobResponse struct {
	ID            int64          `json:"id"`
	Token         string         `json:"token"`
	AllowGitFetch bool           `json:"allow_git_fetch"`
	JobInfo       jobInfo        `json:"job_info"`
	GitInfo       gitInfo        `json:"git_info"`
	RunnerInfo    runnerInfo     `json:"runner_info"`
	Variables     []jobVariable  `json:"variables"`
	Steps         []step         `json:"steps"`
	Image         image          `json:"image"`
	Services      []image        `json:"services"`
	Artifacts     []artifact     `json:"artifacts"`
	Cache         []cache        `json:"cache"`
	Credentials   []any          `json:"credentials"`
	Dependencies  []any          `json:"dependencies"`
	Features      map[string]any `json:"features"`
}

type jobInfo struct {
	Name        string `json:"name"`
	Stage       string `json:"stage"`
	ProjectID   int64  `json:"project_id"`
	ProjectName string `json:"project_name"`
}

type gitInfo struct {
	RepoURL   string   `json:"repo_url"`
	Ref       string   `json:"ref"`
	Sha       string   `json:"sha"`
	BeforeSha string   `json:"before_sha"`
	RefType   string   `json:"ref_type"`
	Refspecs  []string `json:"refspecs"`
	Depth     int      `json:"depth"`
}

type runnerInfo struct {
	Timeout int64 `json:"timeout"`
}

type jobVariable struct {
	Key    string `json:"key"`
	Value  string `json:"value"`
	Public bool   `json:"public"`
	File   bool   `json:"file"`
	Masked bool   `json:"masked"`
	Raw    bool   `json:"raw"`
}

type step struct {
	Name         string   `json:"name"`
	Script       []string `json:"script"`
	Timeout      int64    `json:"timeout"`
	When         string   `json:"when"`
	AllowFailure bool     `json:"allow_failure"`
}

type image struct {
	Name string `json:"name"`
}

type artifact struct {
	Name  string   `json:"name"`
	Paths []string `json:"paths"`
	When  string   `json:"when"`
}

type cache struct {
	Key    string   `json:"key"`
	Paths  []string `json:"paths"`
	Policy string   `json:"policy"`
}

// writeResponseFile writes the job payload to dir/response.json (0600, as
// gitlab-runner does) and returns its path.
func writeResponseFile(dir string, c Config, j Job) (string, error) {
	timeout := int64(j.Timeout / time.Second)
	r := jobResponse{
		ID:            j.ID,
		Token:         j.Token,
		AllowGitFetch: true,
		JobInfo:       jobInfo{Name: j.Name, Stage: j.Stage, ProjectID: j.ProjectID, ProjectName: j.projectName()},
		GitInfo: gitInfo{
			RepoURL: c.ServerURL + "/" + j.ProjectPath + ".git", Ref: j.Ref, Sha: j.SHA,
			BeforeSha: "0000000000000000000000000000000000000000", RefType: "branch",
			Refspecs: []string{"+refs/heads/" + j.Ref + ":refs/remotes/origin/" + j.Ref}, Depth: 20,
		},
		RunnerInfo:   runnerInfo{Timeout: timeout},
		Steps:        []step{{Name: "script", Script: append(append([]string{}, j.BeforeScript...), j.Script...), Timeout: timeout, When: "on_success"}},
		Image:        image{Name: j.Image},
		Services:     []image{},
		Artifacts:    []artifact{},
		Cache:        []cache{},
		Credentials:  []any{},
		Dependencies: []any{},
		Features:     map[string]any{"trace_sections": true},
	}
	if len(j.AfterScript) > 0 {
		r.Steps = append(r.Steps, step{Name: "after_script", Script: j.AfterScript, Timeout: timeout, When: "always"})
	}
	if j.Artifacts {
		r.Artifacts = append(r.Artifacts, artifact{Name: "artifacts", Paths: []string{"out/"}, When: "on_success"})
	}
	if j.Cache {
		r.Cache = append(r.Cache, cache{Key: "default", Paths: []string{".cache/"}, Policy: "pull-push"})
	}
	for _, v := range j.variables(c, "", "") {
		r.Variables = append(r.Variables, jobVariable{Key: v.Key, Value: v.Value, Public: !v.Masked, File: v.File, Masked: v.Masked})
	}
	data, err := json.Marshal(r)
	if err != nil {
		return "", fmt.Errorf("encode the job response: %w", err)
	}
	p := filepath.Join(dir, "response.json")
	if err := os.WriteFile(p, data, 0o600); err != nil {
		return "", fmt.Errorf("write the job response file: %w", err)
	}
	return p, nil
}
