package main

import (
	"testing"

	"example.com/gitlab-runner-kubevirt-plugin-alpine-tinycloud/internal/cloudconfigtest"
	"example.com/gitlab-runner-kubevirt-plugin-alpine-tinycloud/internal/tinycloud"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/conformance"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// TestConformance builds this plugin's binary and runs the contract kit
// against it, the way gitlab-runner-kubevirt will launch it.
func TestConformance(t *testing.T) {
	bin := conformance.Build(t, ".", tinycloud.Name)
	conformance.TestOSPlugin(t, bin, conformance.OSOptions{
		Check: func(t *testing.T, _ *pluginv1.RenderRequest, resp *pluginv1.RenderResponse) {
			cloudconfigtest.Check(t, resp.GetUserData())
		},
	})
}
