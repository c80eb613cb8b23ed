// Command gitlab-runner-kubevirt-plugin-transport-ssh is the first-party
// transport plugin of gitlab-runner-kubevirt: it reaches a booted guest over
// SSH with a pinned host key, runs commands on it and uploads files with
// SFTP. The core launches it through hashicorp/go-plugin; it is not meant to
// be run by hand. See package sshtransport for its options and behaviour.
//
// Build it as
//
//	go build -o gitlab-runner-kubevirt-plugin-transport-ssh \
//	  -ldflags "-X main.version=1.2.3" ./plugins/transport-ssh
package main

import (
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/transport-ssh/sshtransport"
)

// version is the plugin version GetInfo reports; release builds set it
// with -ldflags "-X main.version=...".
var version = sshtransport.DefaultVersion

func main() {
	t := sshtransport.New(sshtransport.Config{Logger: pluginapi.Logger(), Version: version})
	defer t.Close()
	pluginapi.ServeTransport(t)
}
