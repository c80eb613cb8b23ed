package pluginapi_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/plugintest"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

func TestInfoRoundTrip(t *testing.T) {
	want := &pluginv1.PluginInfo{
		Name:         "fake",
		Kind:         pluginv1.Kind_KIND_OS,
		Version:      "1.2.3",
		ApiVersions:  []uint32{1},
		Capabilities: []string{"password"},
		OsFamily:     "linux",
		Shells:       []string{"bash", "sh"},
		Description:  "a fake",
	}
	wantHealth := &pluginv1.HealthResponse{State: pluginv1.HealthResponse_STATE_DEGRADED, Description: "helper missing"}
	conn := plugintest.ServeOS(t, &fakeOS{fakeInfo: fakeInfo{info: want, health: wantHealth}})
	for name, info := range map[string]pluginapi.InfoPlugin{"info service": conn.Info(), "os service": conn.OS()} {
		t.Run(name, func(t *testing.T) {
			got, err := info.GetInfo(t.Context())
			if err != nil {
				t.Fatalf("GetInfo: %v", err)
			}
			if !proto.Equal(got, want) {
				t.Errorf("GetInfo = %v, want %v", got, want)
			}
			health, err := info.Health(t.Context())
			if err != nil {
				t.Fatalf("Health: %v", err)
			}
			if !proto.Equal(health, wantHealth) {
				t.Errorf("Health = %v, want %v", health, wantHealth)
			}
		})
	}
}

func TestRenderRoundTrip(t *testing.T) {
	req := &pluginv1.RenderRequest{
		Username:      "runner",
		AuthorizedKey: "ssh-ed25519 AAAA runner",
		HostKey:       &pluginv1.HostKey{Type: "ssh-ed25519", PrivateKey: []byte("private"), PublicKey: "ssh-ed25519 BBBB host"},
		Password:      "p4ss",
		Hostname:      "job-1",
		Timezone:      "Europe/Zurich",
		Options:       map[string]string{"a": "b"},
		InstanceId:    "iid-1",
	}
	resp := &pluginv1.RenderResponse{
		UserData:    []byte("#cloud-config\n"),
		NetworkData: []byte("version: 2\n"),
		Datasource:  pluginv1.Datasource_DATASOURCE_NOCLOUD,
		Recipe: &pluginv1.RunRecipe{
			Shell: "bash", ScriptExtension: ".sh", TempDir: "/tmp", Command: "bash {script}",
			ReadinessCommand: "cloud-init status --wait", PathSeparator: "/",
		},
	}
	var got *pluginv1.RenderRequest
	osp := plugintest.OS(t, &fakeOS{render: func(_ context.Context, r *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
		got = r
		return resp, nil
	}})
	out, err := osp.Render(t.Context(), req)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	if !proto.Equal(got, req) {
		t.Errorf("implementation got %v, want %v", got, req)
	}
	if !proto.Equal(out, resp) {
		t.Errorf("Render = %v, want %v", out, resp)
	}
}

// TestErrorsCrossBoundary checks that an implementation's error reaches the
// client as a gRPC status with its code and a clean message.
func TestErrorsCrossBoundary(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		wantCode    codes.Code
		wantMessage string
	}{
		{
			name:        "invalid input",
			err:         pluginapi.InvalidInput("username", "a\nb", "must match %s", "^[a-z_][a-z0-9_-]*$"),
			wantCode:    codes.InvalidArgument,
			wantMessage: `username "a\nb": must match ^[a-z_][a-z0-9_-]*$`,
		},
		{
			name:        "wrapped invalid input",
			err:         fmt.Errorf("render user-data: %w", pluginapi.InvalidInput("hostname", "a:b", "must be a DNS name")),
			wantCode:    codes.InvalidArgument,
			wantMessage: `render user-data: hostname "a:b": must be a DNS name`,
		},
		{
			name:        "plain error",
			err:         errors.New("marshal user-data: boom"),
			wantCode:    codes.Unknown,
			wantMessage: "marshal user-data: boom",
		},
		{
			name:        "status",
			err:         status.Error(codes.FailedPrecondition, "helper missing"),
			wantCode:    codes.FailedPrecondition,
			wantMessage: "helper missing",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			osp := plugintest.OS(t, &fakeOS{render: func(context.Context, *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
				return nil, tt.err
			}})
			_, err := osp.Render(t.Context(), &pluginv1.RenderRequest{})
			if err == nil {
				t.Fatal("Render succeeded, want an error")
			}
			if got := status.Code(err); got != tt.wantCode {
				t.Errorf("code = %v, want %v (err: %v)", got, tt.wantCode, err)
			}
			if got := pluginapi.IsInvalidInput(err); got != (tt.wantCode == codes.InvalidArgument) {
				t.Errorf("IsInvalidInput = %v for code %v", got, tt.wantCode)
			}
			msg := pluginapi.ErrorMessage(err)
			if msg != tt.wantMessage {
				t.Errorf("ErrorMessage = %q, want %q", msg, tt.wantMessage)
			}
			if strings.Contains(msg, "rpc error") {
				t.Errorf("ErrorMessage %q still carries gRPC's prefix", msg)
			}
		})
	}
}

func TestRenderHonoursCallerCancellation(t *testing.T) {
	entered, seen := make(chan struct{}), make(chan error, 1)
	osp := plugintest.OS(t, &fakeOS{render: func(ctx context.Context, _ *pluginv1.RenderRequest) (*pluginv1.RenderResponse, error) {
		close(entered)
		<-ctx.Done()
		seen <- ctx.Err()
		return nil, ctx.Err()
	}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := osp.Render(ctx, &pluginv1.RenderRequest{})
		done <- err
	}()
	<-entered
	cancel()
	if err := <-done; status.Code(err) != codes.Canceled {
		t.Errorf("Render after cancel: %v, want code Canceled", err)
	}
	if err := <-seen; !errors.Is(err, context.Canceled) {
		t.Errorf("implementation's ctx ended with %v, want context.Canceled", err)
	}
}
