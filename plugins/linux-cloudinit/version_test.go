package main

import (
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/internal/osutil/osutiltest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/linux-cloudinit/cloudinit"
)

// TestVersionFromLinker builds the binary with -X main.version and checks
// that GetInfo, asked over the real plugin protocol, reports that version.
func TestVersionFromLinker(t *testing.T) {
	for _, version := range []string{cloudinit.DefaultVersion, "1.2.3-rc.1"} {
		t.Run(version, func(t *testing.T) {
			info := osutiltest.LaunchInfo(t, osutiltest.BuildVersioned(t, ".", cloudinit.Name, version))
			if info.GetVersion() != version || info.GetName() != cloudinit.Name {
				t.Errorf("GetInfo says %s %s, want %s %s", info.GetName(), info.GetVersion(), cloudinit.Name, version)
			}
		})
	}
}
