package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
)

// Target is a goal for one metric: at most (or at least) Limit.
type Target struct {
	Metric string
	// AtMost is true for "<= Limit", false for ">= Limit".
	AtMost bool
	Limit  float64
}

// String renders the target as "metric <= limit".
func (t Target) String() string {
	op := ">="
	if t.AtMost {
		op = "<="
	}
	return fmt.Sprintf("%s %s %s", t.Metric, op, formatNumber(t.Limit))
}

// Met reports whether v meets the target; a missing value (nil) does not.
func (t Target) Met(v *float64) bool {
	if v == nil || math.IsNaN(*v) {
		return false
	}
	if t.AtMost {
		return *v <= t.Limit
	}
	return *v >= t.Limit
}

// Report collects the suite's results.
type Report struct {
	// Metrics is the flat metric -> number object of latest.json; a nil
	// value is written as null (not measured, explained in a section).
	Metrics map[string]*float64
	// Targets are checked against Metrics in the summary table.
	Targets []Target
	// Sections are the markdown sections after the summary, in order.
	Sections []Section
	// Header is markdown placed before the summary (environment, command).
	Header string
}

// Section is one benchmark's part of BENCHMARKS.md.
type Section struct {
	Title string
	Body  string
}

// NewReport returns an empty report.
func NewReport() *Report { return &Report{Metrics: map[string]*float64{}} }

// Set records metric name = v.
func (r *Report) Set(name string, v float64) { r.Metrics[name] = &v }

// SetNull records metric name as not measured.
func (r *Report) SetNull(name string) { r.Metrics[name] = nil }

// Add appends a markdown section.
func (r *Report) Add(title, body string) { r.Sections = append(r.Sections, Section{title, body}) }

// JSON returns latest.json: one flat object, keys sorted, values rounded
// to three decimals.
func (r *Report) JSON() ([]byte, error) {
	out := make(map[string]*float64, len(r.Metrics))
	for k, v := range r.Metrics {
		if v == nil {
			out[k] = nil
			continue
		}
		if math.IsNaN(*v) || math.IsInf(*v, 0) {
			return nil, fmt.Errorf("metric %s value %v: must be a finite number (use SetNull for not measured)", k, *v)
		}
		x := math.Round(*v*1000) / 1000
		out[k] = &x
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal metrics: %w", err)
	}
	return append(b, '\n'), nil
}

// Markdown returns BENCHMARKS.md.
func (r *Report) Markdown() string {
	var b strings.Builder
	b.WriteString(r.Header)
	b.WriteString("\n## Targets\n\n| target | measured | met |\n|---|---|---|\n")
	for _, t := range r.Targets {
		v, ok := r.Metrics[t.Metric]
		val := "not measured"
		if ok && v != nil {
			val = formatNumber(*v)
		} else if ok {
			val = "null"
		}
		met := "no"
		if t.Met(v) {
			met = "yes"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", t, val, met)
	}
	for _, s := range r.Sections {
		fmt.Fprintf(&b, "\n## %s\n\n%s\n", s.Title, strings.TrimRight(s.Body, "\n"))
	}
	b.WriteString("\n## All metrics (bench/latest.json)\n\n| metric | value |\n|---|---|\n")
	keys := make([]string, 0, len(r.Metrics))
	for k := range r.Metrics {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := "null"
		if p := r.Metrics[k]; p != nil {
			v = formatNumber(*p)
		}
		fmt.Fprintf(&b, "| `%s` | %s |\n", k, v)
	}
	return b.String()
}

// Write writes latest.json to jsonPath and the markdown to mdPath (each
// skipped when its path is empty).
func (r *Report) Write(jsonPath, mdPath string) error {
	if jsonPath != "" {
		j, err := r.JSON()
		if err != nil {
			return err
		}
		if err := os.WriteFile(jsonPath, j, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", jsonPath, err)
		}
	}
	if mdPath != "" {
		if err := os.WriteFile(mdPath, []byte(r.Markdown()), 0o644); err != nil {
			return fmt.Errorf("write %s: %w", mdPath, err)
		}
	}
	return nil
}

// formatNumber prints v with up to three decimals and no trailing zeros.
func formatNumber(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}

// Table renders a markdown table.
func Table(header []string, rows [][]string) string {
	var b bytes.Buffer
	b.WriteString("| " + strings.Join(header, " | ") + " |\n|")
	for range header {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// F formats a number for a table cell (three decimals at most).
func F(v float64) string { return formatNumber(v) }
