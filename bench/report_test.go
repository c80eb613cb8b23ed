package bench

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestTargetMet(t *testing.T) {
	v := func(x float64) *float64 { return &x }
	tests := []struct {
		target Target
		value  *float64
		want   bool
	}{
		{Target{"a", true, 1.5}, v(1.5), true},
		{Target{"a", true, 1.5}, v(1.6), false},
		{Target{"a", false, 0.8}, v(0.9), true},
		{Target{"a", false, 0.8}, v(0.7), false},
		{Target{"a", true, 1}, nil, false},
		{Target{"a", true, 1}, v(math.NaN()), false},
	}
	for _, tt := range tests {
		if got := tt.target.Met(tt.value); got != tt.want {
			t.Errorf("%s Met(%v) = %v, want %v", tt.target, tt.value, got, tt.want)
		}
	}
}

func TestReportJSONAndMarkdown(t *testing.T) {
	r := NewReport()
	r.Set("job_overhead_ms", 812.34567)
	r.SetNull("run_overhead_ratio_vs_openssh_reuse")
	r.Targets = []Target{{"job_overhead_ms", true, 1000}, {"run_overhead_ratio_vs_openssh_reuse", true, 1}, {"missing", true, 1}}
	r.Add("Job", "phase table")
	j, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]*float64
	if err := json.Unmarshal(j, &got); err != nil {
		t.Fatalf("latest.json is not a flat object of numbers: %v\n%s", err, j)
	}
	if got["job_overhead_ms"] == nil || *got["job_overhead_ms"] != 812.346 {
		t.Errorf("job_overhead_ms = %v, want 812.346", got["job_overhead_ms"])
	}
	if v, ok := got["run_overhead_ratio_vs_openssh_reuse"]; !ok || v != nil {
		t.Errorf("reuse metric = %v (present %v), want null", v, ok)
	}
	md := r.Markdown()
	for _, want := range []string{
		"| `job_overhead_ms <= 1000` | 812.346 | yes |",
		"| `run_overhead_ratio_vs_openssh_reuse <= 1` | null | no |",
		"| `missing <= 1` | not measured | no |",
		"## Job\n\nphase table",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestReportJSONRejectsNonFinite(t *testing.T) {
	r := NewReport()
	r.Set("x", math.Inf(1))
	if _, err := r.JSON(); err == nil || !strings.Contains(err.Error(), "metric x value +Inf") {
		t.Fatalf("error = %v, want one naming metric x", err)
	}
}
