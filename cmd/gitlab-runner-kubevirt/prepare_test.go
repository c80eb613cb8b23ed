package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
)

func TestTolerations(t *testing.T) {
	tests := []struct {
		spec string
		want corev1.Toleration
		err  string
	}{
		{spec: "ci", want: corev1.Toleration{Key: "ci", Operator: corev1.TolerationOpExists}},
		{spec: "ci:NoSchedule", want: corev1.Toleration{Key: "ci", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
		{spec: "example.com/gpu=true:NoExecute", want: corev1.Toleration{Key: "example.com/gpu", Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoExecute}},
		{spec: "ci=:PreferNoSchedule", want: corev1.Toleration{Key: "ci", Operator: corev1.TolerationOpEqual, Effect: corev1.TaintEffectPreferNoSchedule}},
		{spec: "ci:Always", err: `--toleration "ci:Always": effect must be NoSchedule, PreferNoSchedule or NoExecute`},
		{spec: "bad key!", err: `--toleration "bad key!": key`},
		{spec: "ci=bad value", err: `--toleration "ci=bad value": value`},
		{spec: "", err: `--toleration "": key`},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			got, err := tolerations([]string{tt.spec})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0] != tt.want {
				t.Errorf("tolerations(%q) = %+v, want %+v", tt.spec, got, tt.want)
			}
		})
	}
}

func TestNodeSelector(t *testing.T) {
	tests := []struct {
		pairs []string
		want  map[string]string
		err   string
	}{
		{pairs: []string{"kubernetes.io/os=linux", "pool=ci"}, want: map[string]string{"kubernetes.io/os": "linux", "pool": "ci"}},
		{pairs: []string{"pool"}, err: `--node-selector "pool": must be label=value`},
		{pairs: []string{"pool=a b"}, err: `--node-selector "pool=a b": value`},
		{pairs: []string{"-pool=a"}, err: `--node-selector "-pool=a": label`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.pairs, ","), func(t *testing.T) {
			got, err := nodeSelector(tt.pairs)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestKeyValues(t *testing.T) {
	tests := []struct {
		name   string
		pairs  []string
		secret bool
		want   map[string]string
		err    string
	}{
		{name: "plain", pairs: []string{"a=1", "b=x=y", "c="}, want: map[string]string{"a": "1", "b": "x=y", "c": ""}},
		{name: "missing equals", pairs: []string{"novalue"}, err: `--opt "novalue": must be key=value`},
		{name: "duplicate", pairs: []string{"a=1", "a=2"}, err: `key "a" is given twice`},
		{name: "secret value hidden", pairs: []string{"password"}, secret: true, err: `--opt "password=<redacted>"`},
		{name: "secret duplicate hidden", pairs: []string{"p=s3cret", "p=s3cret"}, secret: true, err: `--opt "p=<redacted>"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := keyValues("--opt", tt.pairs, tt.secret)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				if tt.secret && strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error leaks the value: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for k, v := range tt.want {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
		})
	}
}

func TestPrepareFlagsDefaultsAreValid(t *testing.T) {
	f := &prepareFlags{}
	cmd := &cobra.Command{}
	f.register(cmd)
	if err := cmd.ParseFlags([]string{"--default-image", "registry.example.com/ci/debian:12", "--default-architecture", "x86_64",
		"--allowed-architectures", "aarch64", "--max-ttl", "12h"}); err != nil {
		t.Fatal(err)
	}
	opts, err := f.options()
	if err != nil {
		t.Fatalf("options with defaults: %v", err)
	}
	if opts.Defaults.Architecture != "amd64" || opts.Policy.AllowedArchitectures[0] != "arm64" || opts.Port != 22 ||
		opts.Username != "runner" || opts.TransportPlugin != "transport-ssh" || opts.Defaults.MachineType != "q35" {
		t.Errorf("options = %+v", opts)
	}
	if q := opts.Defaults.MemoryRequest; q == nil || q.String() != "1Gi" {
		t.Errorf("default memory request = %v", q)
	}
}

func TestPrepareFlagsReportEveryBadFlag(t *testing.T) {
	f := &prepareFlags{}
	cmd := &cobra.Command{}
	f.register(cmd)
	if err := cmd.ParseFlags([]string{"--default-cpu-request", "x", "--max-memory", "-1Gi", "--allowed-images", "reg/[",
		"--allowed-machine-types", "Q35", "--default-ttl", "1s", "--priority-class", "Bad_Name", "--name-prefix", "A"}); err != nil {
		t.Fatal(err)
	}
	_, err := f.options()
	for _, want := range []string{`--default-image "": is required`, `--default-cpu-request "x"`, `--max-memory "-1Gi": must be greater than zero`,
		`--allowed-images "reg/["`, `--allowed-machine-types "Q35"`, `--default-ttl "1s"`, `--priority-class "Bad_Name"`, `--name-prefix "A"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestPrepareKernelBootFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want *kube.KernelBoot
		err  string
	}{
		{name: "off by default", args: nil, want: nil},
		{name: "defaults", args: []string{"--kernel-boot"}, want: &kube.KernelBoot{Args: "console=ttyS0 root=LABEL=rootfs rw", KernelPath: "/boot/vmlinuz", InitrdPath: "/boot/initrd.img"}},
		{name: "custom", args: []string{"--kernel-boot", "--kernel-args", "console=ttyS0 quiet", "--kernel-path", "/k", "--initrd-path", ""},
			want: &kube.KernelBoot{Args: "console=ttyS0 quiet", KernelPath: "/k"}},
		{name: "paths ignored without kernel boot", args: []string{"--kernel-path", "relative"}, want: nil},
		{name: "relative path", args: []string{"--kernel-boot", "--kernel-path", "boot/vmlinuz"}, err: `--kernel-path "boot/vmlinuz": must be an absolute path`},
		{name: "control character", args: []string{"--kernel-boot", "--kernel-args", "a\x1bb"}, err: `--kernel-args "a\x1bb": must not contain control characters`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &prepareFlags{}
			cmd := &cobra.Command{}
			f.register(cmd)
			if err := cmd.ParseFlags(append([]string{"--default-image", "registry.example.com/ci/debian:12"}, tt.args...)); err != nil {
				t.Fatal(err)
			}
			opts, err := f.options()
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (opts.KernelBoot == nil) != (tt.want == nil) || (tt.want != nil && *opts.KernelBoot != *tt.want) {
				t.Errorf("KernelBoot = %+v, want %+v", opts.KernelBoot, tt.want)
			}
		})
	}
}
