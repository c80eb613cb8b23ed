package cloudbase_test

import (
	"testing"

	"google.golang.org/protobuf/proto"

	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/plugins/windows-cloudbase/cloudbase"
)

func TestGetInfo(t *testing.T) {
	for _, tc := range []struct{ in, want string }{{"", "0.1.0"}, {"2.0.0", "2.0.0"}} {
		info, err := cloudbase.New(tc.in).GetInfo(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		// "password" makes the core send a plaintext password, of at most
		// max_password_length characters (Cloudbase-Init's limit).
		want := &pluginv1.PluginInfo{
			Name: "windows-cloudbase", Kind: pluginv1.Kind_KIND_OS, Version: tc.want,
			ApiVersions: []uint32{1}, Capabilities: []string{"password", "config-drive", "host-key"},
			OsFamily: "windows", Shells: []string{"pwsh", "powershell"}, Description: info.GetDescription(),
			MaxPasswordLength: 20,
			MaxHostnameLength: 15,
		}
		if !proto.Equal(info, want) || info.GetDescription() == "" {
			t.Errorf("GetInfo = %v, want %v with a description", info, want)
		}
	}
	h, err := cloudbase.New("").Health(t.Context())
	if err != nil || h.GetState() != pluginv1.HealthResponse_STATE_OK {
		t.Errorf("Health = %v, %v; want STATE_OK", h, err)
	}
}
