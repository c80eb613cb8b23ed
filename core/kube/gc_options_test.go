package kube

import (
	"strings"
	"testing"
	"time"
)

func TestGCOptionsDefaultsAndLimits(t *testing.T) {
	tests := []struct {
		name    string
		in      GCOptions
		want    GCOptions // checked fields: PageSize, Workers, OrphanGrace
		wantErr string
	}{
		{name: "zero gets defaults", want: GCOptions{PageSize: DefaultGCPageSize, Workers: DefaultGCWorkers, OrphanGrace: DefaultOrphanGrace}},
		{name: "set values stay", in: GCOptions{PageSize: 3, Workers: 7, OrphanGrace: time.Minute}, want: GCOptions{PageSize: 3, Workers: 7, OrphanGrace: time.Minute}},
		{name: "negative workers", in: GCOptions{Workers: -1}, wantErr: "gc workers -1: must be between 1 and 256"},
		{name: "too many workers", in: GCOptions{Workers: MaxGCWorkers + 1}, wantErr: "gc workers 257: must be between 1 and 256"},
		{name: "negative page size", in: GCOptions{PageSize: -2}, wantErr: "gc page size -2: must be between 1 and 10000"},
		{name: "huge page size", in: GCOptions{PageSize: MaxGCPageSize + 1}, wantErr: "gc page size 10001"},
		{name: "negative max age", in: GCOptions{MaxAge: -time.Second}, wantErr: "gc max age -1s: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in
			err := got.setDefaults()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("setDefaults(%+v) = %v, want %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.PageSize != tt.want.PageSize || got.Workers != tt.want.Workers || got.OrphanGrace != tt.want.OrphanGrace || got.Now.IsZero() {
				t.Errorf("setDefaults(%+v) = %+v, want %+v and Now set", tt.in, got, tt.want)
			}
		})
	}
}
