package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr []string
		check   func(t *testing.T, o options)
	}{
		{name: "defaults", check: func(t *testing.T, o options) {
			if o.concurrency != 100 || o.gcObjects != 10000 || o.out != "bench/latest.json" || o.md != "BENCHMARKS.md" || o.gcCap != 90*time.Second {
				t.Errorf("defaults = %+v", o)
			}
			if !o.want("gc") || !o.want("run") {
				t.Errorf("with no -only every benchmark must run")
			}
		}},
		{name: "only selects", args: []string{"-only", "run,gc"}, check: func(t *testing.T, o options) {
			if !o.want("run") || !o.want("gc") || o.want("job") {
				t.Errorf("-only run,gc: want run and gc only")
			}
		}},
		{name: "bad values", args: []string{"-run-n", "0", "-concurrency", "-1", "-gc-objects", "3", "-gc-cap", "10ms", "-only", "run,fast"},
			wantErr: []string{
				"flag -run-n 0: must be at least 1",
				"flag -concurrency -1: must be at least 0",
				"flag -gc-objects 3: must be even",
				"flag -gc-cap 10ms: must be at least 1s",
				`flag -only "run,fast": unknown benchmark "fast"`,
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("parseFlags(%q) succeeded, want errors %q", tt.args, tt.wantErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			}
			tt.check(t, o)
		})
	}
}

func TestExeName(t *testing.T) {
	tests := []struct{ exe, want string }{
		{"gitlab-runner-kubevirt", "core"},
		{"gitlab-runner-kubevirt-plugin-transport-ssh", "transport-ssh"},
		{"sshd", ""},
		{"bash", ""},
	}
	for _, tt := range tests {
		if got := exeName(tt.exe); got != tt.want {
			t.Errorf("exeName(%q) = %q, want %q", tt.exe, got, tt.want)
		}
	}
}
