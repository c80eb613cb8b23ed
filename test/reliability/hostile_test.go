package reliability_test

import (
	"context"
	"strings"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// TestHostileInput runs the real prepare against the real API server with
// malformed, out-of-range, oversized or injected runner flags and job
// variables. Each is a system failure (never a build failure, never an
// unknown one), the job log names the input, and nothing is created, not
// even for a moment (a watch runs for the whole table). The VM_* variables
// of test/e2e TestRefusedVMVariables and the unit tables of core/jobenv,
// core/policy and core/naming are not repeated: this table covers the
// runner's own flags, the job's identity variables and injections.
func TestHostileInput(t *testing.T) {
	long := strings.Repeat("a", 300)
	tests := []struct {
		name  string
		flags []string          // appended to prepare's flags
		vars  map[string]string // job variables (override predefined ones)
		want  string            // the input's name, as the job log must show it
	}{
		// Quantities.
		{name: "default cpu not a quantity", flags: []string{"--default-cpu-request", "two"}, want: "--default-cpu-request"},
		{name: "default cpu negative", flags: []string{"--default-cpu-request", "-1"}, want: "--default-cpu-request"},
		{name: "default memory with a wrong suffix", flags: []string{"--default-memory-request", "1GB"}, want: "--default-memory-request"},
		{name: "default memory limit zero", flags: []string{"--default-memory-limit", "0"}, want: "--default-memory-limit"},
		{name: "default storage not a quantity", flags: []string{"--default-storage-request", "lots"}, want: "--default-storage-request"},
		{name: "max cpu not a quantity", flags: []string{"--max-cpu", "x"}, want: "--max-cpu"},
		{name: "max memory negative", flags: []string{"--max-memory", "-1Gi"}, want: "--max-memory"},
		{name: "max storage oversized", flags: []string{"--max-storage", strings.Repeat("9", 600)}, want: "--max-storage"},
		{name: "cpu variable in Arabic-Indic digits", vars: map[string]string{"VM_CPU_REQUEST": "\u0662"}, want: "VM_CPU_REQUEST"},
		// Durations.
		{name: "default ttl not a duration", flags: []string{"--default-ttl", "forever"}, want: "--default-ttl"},
		{name: "default ttl negative", flags: []string{"--default-ttl", "-1h"}, want: "--default-ttl"},
		{name: "max ttl in years", flags: []string{"--max-ttl", "1y"}, want: "--max-ttl"},
		{name: "stage timeout negative", flags: []string{"--timeout", "-1s"}, want: "timeout"},
		{name: "ttl variable with a command", vars: map[string]string{"VM_TTL": "1h; reboot"}, want: "VM_TTL"},
		// Images.
		{name: "default image with a space", flags: []string{"--default-image", "registry.example.com/ci/debian 12"}, want: "--default-image"},
		{name: "default image with an injected line", flags: []string{"--default-image", "registry.example.com/ci/debian:12\nimagePullPolicy: Always"}, want: "--default-image"},
		{name: "default image oversized", flags: []string{"--default-image", "registry.example.com/" + strings.Repeat("x", 5000)}, want: "--default-image"},
		{name: "allowed images bad glob", flags: []string{"--allowed-images", "registry.example.com/[ci"}, want: "--allowed-images"},
		{name: "job image with an injected line", vars: map[string]string{"CI_JOB_IMAGE": "registry.example.com/ci/debian:12\nspec: evil"}, want: "CI_JOB_IMAGE"},
		{name: "job image upper case", vars: map[string]string{"CI_JOB_IMAGE": "Registry.Example.com/CI/Debian:12"}, want: "CI_JOB_IMAGE"},
		{name: "image pull policy unknown", flags: []string{"--default-image-pull-policy", "Sometimes"}, want: "--default-image-pull-policy"},
		{name: "image pull secret not a name", flags: []string{"--default-image-pull-secret", "Bad_Name"}, want: "--default-image-pull-secret"},
		// Machine types and architectures.
		{name: "default machine type injected", flags: []string{"--default-machine-type", "q35;reboot"}, want: "--default-machine-type"},
		{name: "allowed machine type malformed", flags: []string{"--allowed-machine-types", "pc i440fx"}, want: "--allowed-machine-types"},
		{name: "default architecture unknown", flags: []string{"--default-architecture", "sparc"}, want: "--default-architecture"},
		{name: "allowed architecture unknown", flags: []string{"--allowed-architectures", "mips"}, want: "--allowed-architectures"},
		// SSH user and port.
		{name: "ssh user with an injected line", flags: []string{"--ssh-user", "runner\nAllowUsers *"}, want: "--ssh-user"},
		{name: "ssh user an option", flags: []string{"--ssh-user", "-oProxyCommand=sh"}, want: "--ssh-user"},
		{name: "ssh user oversized", flags: []string{"--ssh-user", long}, want: "--ssh-user"},
		{name: "ssh port zero", flags: []string{"--ssh-port", "0"}, want: "--ssh-port"},
		{name: "ssh port out of range", flags: []string{"--ssh-port", "70000"}, want: "--ssh-port"},
		// Time zone.
		{name: "timezone unknown", flags: []string{"--timezone", "Mars/Olympus_Mons"}, want: "timezone"},
		{name: "timezone a path", flags: []string{"--timezone", "../../etc/shadow"}, want: "timezone"},
		{name: "timezone with an injected line", flags: []string{"--timezone", "UTC\nruncmd: [reboot]"}, want: "timezone"},
		// Plugin options and names.
		{name: "os plugin option without a value", flags: []string{"--os-plugin-option", "noequals"}, want: "--os-plugin-option"},
		{name: "os plugin option unknown", flags: []string{"--os-plugin-option", "bogus_option=1"}, want: "bogus_option"},
		{name: "transport keepalive too short", flags: []string{"--transport-option", "keepalive_interval=1ns"}, want: "keepalive_interval"},
		{name: "transport keepalive not a duration", flags: []string{"--transport-option", "keepalive_interval=forever"}, want: "keepalive_interval"},
		{name: "transport option unknown", flags: []string{"--transport-option", "bogus=1"}, want: "bogus"},
		{name: "os plugin a path", flags: []string{"--os-plugin", "../../../bin/sh"}, want: "OS plugin"},
		{name: "transport plugin missing", flags: []string{"--transport-plugin", "transport-nonexistent"}, want: "transport-nonexistent"},
		// Name prefix.
		{name: "name prefix upper case", flags: []string{"--name-prefix", "UPPER"}, want: "--name-prefix"},
		{name: "name prefix with a slash", flags: []string{"--name-prefix", "a/b"}, want: "--name-prefix"},
		{name: "name prefix oversized", flags: []string{"--name-prefix", strings.Repeat("r", 60)}, want: "--name-prefix"},
		// Scheduling flags.
		{name: "node selector without a value", flags: []string{"--node-selector", "novalue"}, want: "--node-selector"},
		{name: "toleration effect unknown", flags: []string{"--toleration", "key=value:Sometimes"}, want: "--toleration"},
		{name: "priority class not a name", flags: []string{"--priority-class", "UPPER_case"}, want: "--priority-class"},
		{name: "kernel path relative", flags: []string{"--kernel-boot", "--kernel-path", "boot/vmlinuz"}, want: "--kernel-path"},
		// Identity variables.
		{name: "job id not a number", vars: map[string]string{"CI_JOB_ID": "abc"}, want: "CI_JOB_ID"},
		{name: "job id negative", vars: map[string]string{"CI_JOB_ID": "-1"}, want: "CI_JOB_ID"},
		{name: "job id overflows", vars: map[string]string{"CI_JOB_ID": "99999999999999999999999"}, want: "CI_JOB_ID"},
		{name: "runner id injected", vars: map[string]string{"CI_RUNNER_ID": "1; rm -rf /"}, want: "CI_RUNNER_ID"},
		{name: "runner id empty", vars: map[string]string{"CI_RUNNER_ID": ""}, want: "CI_RUNNER_ID"},
	}
	if len(tests) < 40 {
		t.Fatalf("the table has %d cases; the suite promises at least 40", len(tests))
	}

	// Watch both kinds for the whole table: an object created and deleted
	// again would be missed by a list at the end.
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitLimit)
	defer cancel()
	watch := e2etest.WatchCreations(ctx, t, e2etest.Cluster{Kube: bed.Kube, Virt: bed.Virt, Namespace: bed.Namespace, Standin: bed.Standin}, waitLimit)

	t.Run("table", func(t *testing.T) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				job := runner.Job{ID: nextJobID(), Script: []string{"echo must-not-run"}}
				for k, v := range tt.vars {
					job.Variables = append(job.Variables, runner.Variable{Key: k, Value: v})
				}
				res := runJob(ctx, t, newExecutor(t, runner.Hooks{}, tt.flags...), job)
				wantStatus(t, res, runner.StatusSystemFailure)
				if res.FailedStage != "prepare" {
					t.Errorf("failed stage = %q, want prepare", res.FailedStage)
				}
				if out := res.Output("prepare"); !strings.Contains(out, tt.want) {
					t.Errorf("prepare's output does not name the input %q:\n%s", tt.want, out)
				}
			})
		}
	})
	// Transport options included: prepare asks the transport plugin to
	// check them (ValidateTarget) before it creates anything.
	if created := watch.Stop(); len(created) != 0 {
		t.Errorf("refused inputs created %d objects %v; want none", len(created), created)
	}
	assertClean(t)
}
