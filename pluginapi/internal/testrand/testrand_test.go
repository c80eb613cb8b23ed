package testrand

import (
	"bytes"
	"testing"
)

func TestBytes(t *testing.T) {
	tests := []struct {
		name string
		n    int
	}{
		{"empty", 0},
		{"shorter than a word", 5},
		{"whole words", 64},
		{"words and a tail", 1027},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := Bytes(tt.n, 7), Bytes(tt.n, 7)
			if len(a) != tt.n {
				t.Fatalf("len = %d, want %d", len(a), tt.n)
			}
			if !bytes.Equal(a, b) {
				t.Error("the same seed gave different bytes")
			}
			if tt.n >= 8 && bytes.Equal(a, Bytes(tt.n, 8)) {
				t.Error("another seed gave the same bytes")
			}
		})
	}
	// A prefix is stable: a longer stream starts with the shorter one's
	// whole words, so chunked readers can be checked against it.
	if long, short := Bytes(4096, 3), Bytes(1024, 3); !bytes.Equal(long[:1024], short) {
		t.Error("Bytes(1024) is not a prefix of Bytes(4096) for the same seed")
	}
}
