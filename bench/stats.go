package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Median returns the median of xs (the mean of the two middle values for
// an even count). It fails on an empty sample or a NaN value.
func Median(xs []float64) (float64, error) {
	return Percentile(xs, 50)
}

// Percentile returns the p-th percentile of xs (0 <= p <= 100) by linear
// interpolation between closest ranks, so Percentile(xs, 50) is the
// median. It fails on an empty sample, a NaN value or p outside [0, 100].
func Percentile(xs []float64, p float64) (float64, error) {
	if len(xs) == 0 {
		return 0, errors.New("percentile: sample is empty (need at least one run)")
	}
	if math.IsNaN(p) || p < 0 || p > 100 {
		return 0, fmt.Errorf("percentile p %v: must be between 0 and 100", p)
	}
	s := slices.Clone(xs)
	for i, x := range s {
		if math.IsNaN(x) {
			return 0, fmt.Errorf("percentile: value %d is NaN (a failed measurement?)", i)
		}
	}
	slices.Sort(s)
	rank := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(rank))
	hi := int(math.Ceil(rank))
	return s[lo] + (s[hi]-s[lo])*(rank-float64(lo)), nil
}

// Measure is one measurement: it returns the measured value (a duration in
// milliseconds, a throughput, ...) or an error.
type Measure func(ctx context.Context) (float64, error)

// Alternate runs a and b n times each in the order a, b, a, b, ... so
// that slow drifts of the machine (other load, thermal state, caches)
// affect both sides alike, and returns both samples. It stops at the
// first error, naming the side and the round.
func Alternate(ctx context.Context, n int, a, b Measure) (as, bs []float64, err error) {
	if n < 1 {
		return nil, nil, fmt.Errorf("alternate n %d: must be at least 1", n)
	}
	for i := range n {
		for _, side := range []struct {
			name string
			m    Measure
			out  *[]float64
		}{{"A", a, &as}, {"B", b, &bs}} {
			if err := ctx.Err(); err != nil {
				return as, bs, fmt.Errorf("alternate round %d: %w", i+1, err)
			}
			v, err := side.m(ctx)
			if err != nil {
				return as, bs, fmt.Errorf("alternate round %d side %s: %w", i+1, side.name, err)
			}
			*side.out = append(*side.out, v)
		}
	}
	return as, bs, nil
}

// Summary is a sample's median, 95th percentile and size.
type Summary struct {
	Median, P95 float64
	N           int
}

// Summarize returns the median, the 95th percentile and the size of xs.
func Summarize(xs []float64) (Summary, error) {
	m, err := Median(xs)
	if err != nil {
		return Summary{}, err
	}
	p, err := Percentile(xs, 95)
	if err != nil {
		return Summary{}, err
	}
	return Summary{Median: m, P95: p, N: len(xs)}, nil
}
