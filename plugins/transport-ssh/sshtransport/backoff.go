package sshtransport

import (
	"math/rand/v2"
	"time"
)

// backoff yields capped exponential delays with jitter: each delay is drawn
// uniformly from [d/2, d], where d doubles from initial up to max. The
// jitter keeps many runners from retrying a recovering host in lockstep.
type backoff struct {
	next, max time.Duration
}

func newBackoff(initial, max time.Duration) *backoff {
	return &backoff{next: initial, max: max}
}

// delay returns the next delay.
func (b *backoff) delay() time.Duration {
	d := b.next
	b.next = min(2*b.next, b.max)
	half := d / 2
	return half + rand.N(half+1)
}
