package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCountRequests(t *testing.T) {
	const sa = "system:serviceaccount:ns:runner"
	log := strings.Join([]string{
		`{"auditID":"1","stage":"ResponseComplete","verb":"create","user":{"username":"` + sa + `"},"objectRef":{"resource":"secrets"}}`,
		`{"auditID":"2","stage":"ResponseStarted","verb":"watch","user":{"username":"` + sa + `"},"objectRef":{"resource":"virtualmachineinstances"}}`,
		`{"auditID":"2","stage":"ResponseComplete","verb":"watch","user":{"username":"` + sa + `"},"objectRef":{"resource":"virtualmachineinstances"}}`,
		`{"auditID":"3","stage":"ResponseComplete","verb":"get","user":{"username":"admin"},"objectRef":{"resource":"secrets"}}`,
		`{"auditID":"4","stage":"ResponseComplete","verb":"create","user":{"username":"` + sa + `"},"objectRef":{"resource":"serviceaccounts","subresource":"token"}}`,
		`{"auditID":"5","stage":"ResponseComplete","verb":"get","user":{"username":"` + sa + `"}}`,
	}, "\n") + "\n"
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user    string
		total   int
		byKey   map[string]int
		wantErr string
	}{
		{user: sa, total: 4, byKey: map[string]int{"create secrets": 1, "watch virtualmachineinstances": 1, "create serviceaccounts/token": 1, "get -": 1}},
		{user: "admin", total: 1, byKey: map[string]int{"get secrets": 1}},
		{user: "nobody", total: 0, byKey: map[string]int{}},
		{user: "", wantErr: "user is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			c, err := CountRequests(path, tt.user)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Total != tt.total || len(c.ByKey) != len(tt.byKey) {
				t.Fatalf("count = %+v, want total %d by %v", c, tt.total, tt.byKey)
			}
			for k, v := range tt.byKey {
				if c.ByKey[k] != v {
					t.Errorf("%s = %d, want %d", k, c.ByKey[k], v)
				}
			}
		})
	}
}

func TestCountRequestsRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte("{}\nnot json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := CountRequests(path, "u"); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("error = %v, want one naming line 2", err)
	}
}

func TestAuditCountSub(t *testing.T) {
	after := AuditCount{Total: 5, ByKey: map[string]int{"get secrets": 3, "list vmis": 2}}
	before := AuditCount{Total: 2, ByKey: map[string]int{"get secrets": 2}}
	d := after.Sub(before)
	if d.Total != 3 || d.ByKey["get secrets"] != 1 || d.ByKey["list vmis"] != 2 {
		t.Fatalf("Sub = %+v", d)
	}
}
