package cloudinit_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/linux-cloudinit/cloudinit"
)

func TestGetInfo(t *testing.T) {
	for _, tc := range []struct{ in, want string }{{"", "0.1.0"}, {"2.0.0", "2.0.0"}} {
		info, err := cloudinit.New(tc.in).GetInfo(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		want := &pluginv1.PluginInfo{
			Name: "linux-cloudinit", Kind: pluginv1.Kind_KIND_OS, Version: tc.want,
			ApiVersions: []uint32{1}, Capabilities: []string{"nocloud", "host-key", "password-hash"},
			OsFamily: "linux", Shells: []string{"bash", "sh"}, Description: info.GetDescription(),
		}
		if !proto.Equal(info, want) || info.GetDescription() == "" {
			t.Errorf("GetInfo = %v, want %v with a description", info, want)
		}
	}
	h, err := cloudinit.New("").Health(t.Context())
	if err != nil || h.GetState() != pluginv1.HealthResponse_STATE_OK {
		t.Errorf("Health = %v, %v; want STATE_OK", h, err)
	}
}
