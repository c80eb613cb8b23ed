package kube

import (
	"testing"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
)

// TestStandardLabels checks the app.kubernetes.io labels on both objects,
// beside the GitLab ones checkMeta asserts.
func TestStandardLabels(t *testing.T) {
	tests := []struct {
		name        string
		version     string
		wantVersion string // "" means the label is absent
	}{
		{name: "release version", version: "v1.2.3", wantVersion: "v1.2.3"},
		{name: "dev build", version: "dev", wantVersion: "dev"},
		{name: "version with build metadata is sanitised", version: "v1.2.3+dirty", wantVersion: "v1.2.3-dirty"},
		{name: "no version, no label", version: "", wantVersion: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := testJob(t, "ci", "12", "345", pluginv1.Datasource_DATASOURCE_NOCLOUD, false)
			j.Version = tt.version
			secret, err := j.Secret()
			if err != nil {
				t.Fatal(err)
			}
			vmi, err := j.VMI()
			if err != nil {
				t.Fatal(err)
			}
			for kind, labels := range map[string]map[string]string{"vmi": vmi.Labels, "secret": secret.Labels} {
				want := map[string]string{
					"app.kubernetes.io/name":       "gitlab-runner-kubevirt",
					"app.kubernetes.io/managed-by": "gitlab-runner-kubevirt",
					"app.kubernetes.io/instance":   j.Names.VMI,
					"app.kubernetes.io/component":  naming.ComponentJobVM,
				}
				for k, v := range want {
					if labels[k] != v {
						t.Errorf("%s label %s = %q, want %q", kind, k, labels[k], v)
					}
				}
				got, ok := labels["app.kubernetes.io/version"]
				switch {
				case tt.wantVersion == "" && ok:
					t.Errorf("%s has app.kubernetes.io/version=%q, want none", kind, got)
				case tt.wantVersion != "" && got != tt.wantVersion:
					t.Errorf("%s label app.kubernetes.io/version = %q, want %q", kind, got, tt.wantVersion)
				}
			}
		})
	}
}
