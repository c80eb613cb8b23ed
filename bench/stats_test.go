package bench

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestPercentile(t *testing.T) {
	tests := []struct {
		name    string
		xs      []float64
		p       float64
		want    float64
		wantErr string
	}{
		{name: "single", xs: []float64{7}, p: 50, want: 7},
		{name: "odd median unsorted", xs: []float64{9, 1, 5}, p: 50, want: 5},
		{name: "even median", xs: []float64{4, 1, 3, 2}, p: 50, want: 2.5},
		{name: "min", xs: []float64{3, 1, 2}, p: 0, want: 1},
		{name: "max", xs: []float64{3, 1, 2}, p: 100, want: 3},
		{name: "p95 interpolates", xs: []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21}, p: 95, want: 20},
		{name: "empty", xs: nil, p: 50, wantErr: "sample is empty"},
		{name: "p too big", xs: []float64{1}, p: 101, wantErr: "p 101: must be between 0 and 100"},
		{name: "p negative", xs: []float64{1}, p: -1, wantErr: "p -1: must be between 0 and 100"},
		{name: "NaN value", xs: []float64{1, math.NaN()}, p: 50, wantErr: "value 1 is NaN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Percentile(tt.xs, tt.p)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Percentile(%v, %v) error = %v, want it to contain %q", tt.xs, tt.p, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Percentile(%v, %v): %v", tt.xs, tt.p, err)
			}
			if math.Abs(got-tt.want) > 1e-9 {
				t.Fatalf("Percentile(%v, %v) = %v, want %v", tt.xs, tt.p, got, tt.want)
			}
		})
	}
}

func TestPercentileDoesNotReorderInput(t *testing.T) {
	xs := []float64{3, 1, 2}
	if _, err := Median(xs); err != nil {
		t.Fatal(err)
	}
	if xs[0] != 3 || xs[1] != 1 || xs[2] != 2 {
		t.Fatalf("Median reordered its input: %v", xs)
	}
}

func TestAlternate(t *testing.T) {
	tests := []struct {
		name      string
		n         int
		failAt    int // call number (1-based) that fails; 0 never
		wantOrder string
		wantErr   string
	}{
		{name: "three rounds", n: 3, wantOrder: "ABABAB"},
		{name: "one round", n: 1, wantOrder: "AB"},
		{name: "zero rounds", n: 0, wantErr: "alternate n 0: must be at least 1"},
		{name: "B fails in round 2", n: 3, failAt: 4, wantOrder: "ABA", wantErr: "round 2 side B: boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var order strings.Builder
			calls := 0
			side := func(name string) Measure {
				return func(context.Context) (float64, error) {
					calls++
					if calls == tt.failAt {
						return 0, errors.New("boom")
					}
					order.WriteString(name)
					return float64(calls), nil
				}
			}
			as, bs, err := Alternate(context.Background(), tt.n, side("A"), side("B"))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if order.String() != tt.wantOrder {
				t.Fatalf("call order %q, want %q", order.String(), tt.wantOrder)
			}
			if tt.wantErr == "" && (len(as) != tt.n || len(bs) != tt.n) {
				t.Fatalf("got %d A and %d B values, want %d each", len(as), len(bs), tt.n)
			}
		})
	}
}

func TestAlternateStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	m := func(context.Context) (float64, error) {
		calls++
		cancel()
		return 1, nil
	}
	_, _, err := Alternate(ctx, 5, m, m)
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("after cancel: err = %v, calls = %d; want context.Canceled after 1 call", err, calls)
	}
}
