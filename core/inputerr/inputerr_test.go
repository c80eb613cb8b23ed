package inputerr

import (
	"errors"
	"fmt"
	"testing"
)

func TestError(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
		is   bool
	}{
		{"plain", New("VM_CPU_REQUEST", "lots", "must be a Kubernetes quantity such as %s", "500m"), `VM_CPU_REQUEST "lots": must be a Kubernetes quantity such as 500m`, true},
		{"value is quoted", New("--ssh-user", "a\nb", "must match %s", "x"), `--ssh-user "a\nb": must match x`, true},
		{"wrapped", fmt.Errorf("prepare: %w", New("VM_TTL", "1s", "too short")), `prepare: VM_TTL "1s": too short`, true},
		{"joined", errors.Join(errors.New("other"), New("CI_JOB_ID", "x", "digits")), "other\nCI_JOB_ID \"x\": digits", true},
		{"not an input error", errors.New("connection refused"), "connection refused", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.err.Error(); got != tt.want {
				t.Errorf("Error() = %q, want %q", got, tt.want)
			}
			if got := Is(tt.err); got != tt.is {
				t.Errorf("Is() = %t, want %t", got, tt.is)
			}
		})
	}
}
