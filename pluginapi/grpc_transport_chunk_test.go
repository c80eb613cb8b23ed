package pluginapi

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
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

// TestExecOutputCodec checks that the Exec stream's decoder gives the same
// message as proto.Unmarshal for every kind of output message, including
// wire forms its shortcut does not take.
func TestExecOutputCodec(t *testing.T) {
	marshal := func(m *pluginv1.ExecOutput) []byte {
		b, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	stdout := marshal(&pluginv1.ExecOutput{Output: &pluginv1.ExecOutput_Stdout{Stdout: []byte("hello\n")}})
	tests := []struct {
		name    string
		wire    []byte
		wantErr bool
	}{
		{name: "stdout", wire: stdout},
		{name: "stderr", wire: marshal(&pluginv1.ExecOutput{Output: &pluginv1.ExecOutput_Stderr{Stderr: bytes.Repeat([]byte("e"), 40000)}})},
		{name: "empty stdout", wire: marshal(&pluginv1.ExecOutput{Output: &pluginv1.ExecOutput_Stdout{Stdout: []byte{}}})},
		{name: "exit", wire: marshal(&pluginv1.ExecOutput{Output: &pluginv1.ExecOutput_Exit{Exit: &pluginv1.ExecExit{Code: 3, Message: "m"}}})},
		{name: "empty message", wire: nil},
		// The last of repeated oneof fields wins.
		{name: "stdout then stderr", wire: append(slices.Clone(stdout), marshal(&pluginv1.ExecOutput{Output: &pluginv1.ExecOutput_Stderr{Stderr: []byte("x")}})...)},
		{name: "stdout and an unknown field", wire: protowire.AppendBytes(protowire.AppendTag(slices.Clone(stdout), 9, protowire.BytesType), []byte("z"))},
		{name: "truncated", wire: stdout[:len(stdout)-1], wantErr: true},
	}
	c := &execOutputCodec{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := &pluginv1.ExecOutput{}
			wantErr := proto.Unmarshal(tt.wire, want)
			// Split the wire form as gRPC does into frames.
			var data mem.BufferSlice
			for b := tt.wire; len(b) > 0; b = b[min(len(b), 5):] {
				data = append(data, mem.SliceBuffer(b[:min(len(b), 5)]))
			}
			got := &pluginv1.ExecOutput{Output: &pluginv1.ExecOutput_Exit{Exit: &pluginv1.ExecExit{Code: 9}}} // stale
			err := c.Unmarshal(data, got)
			if (err != nil) != tt.wantErr || (wantErr != nil) != tt.wantErr {
				t.Fatalf("Unmarshal error %v, proto.Unmarshal error %v; want an error: %v", err, wantErr, tt.wantErr)
			}
			if err == nil && !proto.Equal(got, want) {
				t.Errorf("Unmarshal = %v, want %v (as proto.Unmarshal)", got, want)
			}
		})
	}
}
