package pluginapi

import (
	"errors"
	"fmt"
	"testing"
)

// TestSendChunksFitBufferTiers checks that every message payload fits one
// of gRPC's pool tiers with little waste (at most smallPayload, or between
// largePayload/2 and largePayload), that the parts cover the input in
// order, and that the count stays small.
func TestSendChunksFitBufferTiers(t *testing.T) {
	tests := []struct {
		n    int
		want []int // part sizes
	}{
		{n: 0, want: nil},
		{n: 1, want: []int{1}},
		{n: smallPayload, want: []int{smallPayload}},
		{n: 32 << 10, want: []int{smallPayload, payloadFraming}},
		{n: 100 << 10, want: []int{smallPayload, smallPayload, smallPayload, 100<<10 - 3*smallPayload}},
		{n: largePayload / 2, want: []int{largePayload / 2}},
		{n: largePayload, want: []int{largePayload}},
		{n: largePayload + 1, want: []int{largePayload, 1}},
		{n: 3 << 20, want: []int{largePayload, largePayload, largePayload, 3 * payloadFraming}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			p := make([]byte, tt.n)
			for i := range p {
				p[i] = byte(i * 7)
			}
			var got []int
			next := 0
			n, err := sendChunks(p, func(b []byte) error {
				if len(b) == 0 || (len(b) > smallPayload && (len(b) < largePayload/2 || len(b) > largePayload)) {
					t.Errorf("part of %d bytes fits no tier well", len(b))
				}
				if &b[0] != &p[next] {
					t.Errorf("part %d does not start at offset %d", len(got), next)
				}
				next += len(b)
				got = append(got, len(b))
				return nil
			})
			if err != nil || n != tt.n {
				t.Fatalf("sendChunks = %d, %v; want %d, nil", n, err, tt.n)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("parts %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSendChunksStopsAtFirstError(t *testing.T) {
	boom := errors.New("stream closed")
	calls := 0
	n, err := sendChunks(make([]byte, 3*smallPayload), func([]byte) error {
		calls++
		if calls == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != smallPayload || calls != 2 {
		t.Fatalf("sendChunks = %d, %v after %d calls; want %d, %v after 2", n, err, calls, smallPayload, boom)
	}
}
