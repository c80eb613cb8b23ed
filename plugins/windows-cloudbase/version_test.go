package main

import (
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil/osutiltest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/windows-cloudbase/cloudbase"
)

// TestVersionFromLinker builds the binary with -X main.version and checks
// that GetInfo, asked over the real plugin protocol, reports that version.
func TestVersionFromLinker(t *testing.T) {
	for _, version := range []string{cloudbase.DefaultVersion, "1.2.3-rc.1"} {
		t.Run(version, func(t *testing.T) {
			info := osutiltest.LaunchInfo(t, osutiltest.BuildVersioned(t, ".", cloudbase.Name, version))
			if info.GetVersion() != version || info.GetName() != cloudbase.Name {
				t.Errorf("GetInfo says %s %s, want %s %s", info.GetName(), info.GetVersion(), cloudbase.Name, version)
			}
		})
	}
}
