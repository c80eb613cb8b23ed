package runner_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

func TestParseJobFile(t *testing.T) {
	tests := []struct {
		name    string
		data    string
		want    runner.Job
		wantErr string
	}{
		{
			name: "every key",
			data: "name: build\nid: 7\nimage: registry.example.com/ci/debian:12\ntimeout: 10m\nvariables:\n  VM_CPU_REQUEST: \"2\"\n  A: b\nbefore_script: [\"echo a\"]\nscript:\n  - make\nafter_script: [\"echo z\"]\n",
			want: runner.Job{ID: 7, Name: "build", Image: "registry.example.com/ci/debian:12", Timeout: 10 * time.Minute,
				Variables:    []runner.Variable{{Key: "A", Value: "b"}, {Key: "VM_CPU_REQUEST", Value: "2"}},
				BeforeScript: []string{"echo a"}, Script: []string{"make"}, AfterScript: []string{"echo z"}},
		},
		{name: "id defaults to 1", data: "name: x\nscript: [true]\n", want: runner.Job{ID: 1, Name: "x", Script: []string{"true"}}},
		{name: "unknown key", data: "name: x\nscript: [true]\nstage: test\n", wantErr: `unknown field "stage"`},
		{name: "no script", data: "name: x\n", wantErr: "script: must list at least one command"},
		{name: "empty command", data: "name: x\nscript: [\"  \"]\n", wantErr: "script[0]: must not be empty"},
		{name: "no name", data: "script: [true]\n", wantErr: `name "": must be 1 to 255 characters`},
		{name: "negative id", data: "name: x\nid: -4\nscript: [true]\n", wantErr: "id -4: must be positive"},
		{name: "bad timeout", data: "name: x\ntimeout: soon\nscript: [true]\n", wantErr: `timeout "soon": must be a duration`},
		{name: "bad variable", data: "name: x\nvariables: {\"VM-CPU\": \"1\"}\nscript: [true]\n", wantErr: `variables key "VM-CPU": must match`},
		{name: "not YAML", data: "name: [\n", wantErr: "not a job file"},
		{name: "a list", data: "- name: x\n", wantErr: "not a job file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := runner.ParseJobFile([]byte(tt.data))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != tt.want.ID || got.Name != tt.want.Name || got.Image != tt.want.Image || got.Timeout != tt.want.Timeout ||
				!slices.Equal(got.Variables, tt.want.Variables) || !slices.Equal(got.Script, tt.want.Script) ||
				!slices.Equal(got.BeforeScript, tt.want.BeforeScript) || !slices.Equal(got.AfterScript, tt.want.AfterScript) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestExampleJobFiles parses every job in examples/jobs.
func TestExampleJobFiles(t *testing.T) {
	files, err := filepath.Glob("../../examples/jobs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no job files in examples/jobs (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := runner.LoadJobFile(f); err != nil {
				t.Error(err)
			}
		})
	}
}
