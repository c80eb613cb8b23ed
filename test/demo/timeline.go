package main

import (
	"sort"
	"sync"
	"time"
)

// timeline records when the demo's phases happened, relative to its start.
type timeline struct {
	start time.Time

	mu    sync.Mutex
	marks []phase
}

// phase is one entry of the timeline: a moment (took 0) or a span.
type phase struct {
	name string
	at   time.Duration // since start; for spans, their end
	took time.Duration
}

// mark records a moment now and returns its offset.
func (t *timeline) mark(name string) time.Duration { return t.markAt(name, time.Now()) }

// markAt records a moment at when; only the first mark of a name counts.
// The "took" of a moment is the time since the previous moment.
func (t *timeline) markAt(name string, when time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	at := when.Sub(t.start)
	for _, m := range t.marks {
		if m.name == name {
			return m.at
		}
	}
	t.marks = append(t.marks, phase{name: name, at: at})
	return at
}

// span records a phase that started at start and lasted took.
func (t *timeline) span(name string, start time.Time, took time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.marks = append(t.marks, phase{name: name, at: start.Add(took).Sub(t.start), took: took})
}

// sorted returns the phases by time; a moment's took is the time since
// the phase before it.
func (t *timeline) sorted() []phase {
	t.mu.Lock()
	out := append([]phase(nil), t.marks...)
	t.mu.Unlock()
	sort.SliceStable(out, func(i, j int) bool { return out[i].at < out[j].at })
	var prev time.Duration
	for i := range out {
		if out[i].took == 0 {
			out[i].took = out[i].at - prev
		}
		prev = out[i].at
	}
	return out
}
