package osutil

import (
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// OSInfo completes info, a plugin's own GetInfo data (name, version,
// capabilities, OS family, shells, description, limits), with what every
// first-party OS plugin declares alike: kind OS and API version 1. It
// returns info.
func OSInfo(info *pluginv1.PluginInfo) *pluginv1.PluginInfo {
	info.Kind = pluginv1.Kind_KIND_OS
	info.ApiVersions = []uint32{pluginapi.APIVersion1}
	return info
}

// Healthy is the Health answer of a plugin that renders from the request
// alone and so is always OK; description says what it renders.
func Healthy(description string) *pluginv1.HealthResponse {
	return &pluginv1.HealthResponse{
		State:       pluginv1.HealthResponse_STATE_OK,
		Description: description,
	}
}
