package main

import (
	"strings"
	"testing"
)

// TestGCFlagsAreValidated runs gc with bad flags: each fails before any
// API call (the kubeconfig does not exist) with an error naming the flag,
// the value and the rule.
func TestGCFlagsAreValidated(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--workers", "0"}, []string{`--workers "0": must be between 1 and 256`}},
		{[]string{"--workers", "257"}, []string{`--workers "257": must be between 1 and 256`}},
		{[]string{"--qps", "0"}, []string{`--qps "0": must be above 0`}},
		{[]string{"--qps", "-5"}, []string{`--qps "-5": must be above 0`}},
		{[]string{"--qps", "NaN"}, []string{`--qps "NaN": must be above 0`}},
		{[]string{"--qps", "1e9"}, []string{`--qps "1e+09": must be above 0 and at most 100000`}},
		{[]string{"--burst", "0"}, []string{`--burst "0": must be between 1 and 200000`}},
		{[]string{"--page-size", "0"}, []string{`--page-size "0": must be between 1 and 10000`}},
		{[]string{"--max-age", "-1h"}, []string{`--max-age "-1h0m0s": must not be negative`}},
		{
			[]string{"--workers", "-1", "--qps", "0", "--burst", "-1"},
			[]string{`--workers "-1"`, `--qps "0"`, `--burst "-1"`},
		},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			args := append([]string{"gc", "--kubeconfig", t.TempDir() + "/missing"}, tt.args...)
			_, _, err := execRoot(t, args...)
			if err == nil {
				t.Fatalf("gc %v succeeded, want a flag error", tt.args)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("gc %v = %q, want it to contain %q", tt.args, err, w)
				}
			}
			if strings.Contains(err.Error(), "missing") {
				t.Errorf("gc %v got as far as loading the kubeconfig: %v", tt.args, err)
			}
		})
	}
}

// TestGCDefaultFlagsAreValid checks that gc's defaults pass validation:
// with no flags gc gets as far as loading the (missing) kubeconfig.
func TestGCDefaultFlagsAreValid(t *testing.T) {
	_, _, err := execRoot(t, "gc", "--kubeconfig", t.TempDir()+"/missing")
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("gc with default flags = %v, want the kubeconfig error", err)
	}
}
