package standin

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/qemu"
)

func TestParseImageMap(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		err  string
	}{
		{name: "guest", doc: "images:\n- image: 'registry.example.com/x/debian-bookworm:*'\n  guest: debian-bookworm\n"},
		{name: "dir", doc: `{"images": [{"image": "reg/x:v1", "dir": "/var/cache/img"}]}`},
		{name: "empty", doc: "images: []\n", err: "images: must list at least one image pattern"},
		{name: "unknown key", doc: "images:\n- image: a\n  guest: debian-bookworm\n  kernel: /x\n", err: `unknown field "kernel"`},
		{name: "no target", doc: "images:\n- image: a\n", err: "images[0]: needs guest"},
		{name: "both", doc: "images:\n- image: a\n  guest: debian-bookworm\n  dir: /x\n", err: `images[0]: guest "debian-bookworm" and dir "/x": set only one`},
		{name: "unknown guest", doc: "images:\n- image: a\n  guest: plan9\n", err: `images[0].guest "plan9": must be one of`},
		{name: "relative dir", doc: "images:\n- image: a\n  dir: img\n", err: `images[0].dir "img": must be an absolute path`},
		{name: "bad pattern", doc: "images:\n- image: 'reg/['\n  guest: debian-bookworm\n", err: `images[0].image "reg/[": not a path.Match pattern`},
		{name: "no image", doc: "images:\n- guest: debian-bookworm\n", err: "images[0].image: is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseImageMap([]byte(tt.doc))
			if tt.err == "" {
				if err != nil {
					t.Fatalf("ParseImageMap: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("ParseImageMap error = %v, want %q", err, tt.err)
			}
		})
	}
}

func TestImageMapResolve(t *testing.T) {
	m, err := ParseImageMap([]byte(`
images:
- image: "registry.example.com/gitlab-runner-kubevirt/debian-bookworm:*"
  guest: debian-bookworm
- image: "registry.example.com/broken/*"
  dir: /tmp/broken
- image: "*"
  dir: /tmp/fallback-for-names-without-slash
`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		image, guest, dir, err string
	}{
		{image: "registry.example.com/gitlab-runner-kubevirt/debian-bookworm:latest", guest: "debian-bookworm"},
		{image: "registry.example.com/broken/kernel", dir: "/tmp/broken"},
		{image: "debian", dir: "/tmp/fallback-for-names-without-slash"},
		{image: "registry.example.com/gitlab-runner-kubevirt/debian-bookworm/extra:1", err: `containerDisk image "registry.example.com/gitlab-runner-kubevirt/debian-bookworm/extra:1": matches no pattern`},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			got, err := m.Resolve(tt.image)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Resolve error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got.Guest != tt.guest || got.Dir != tt.dir {
				t.Fatalf("Resolve = %+v, %v; want guest %q dir %q", got, err, tt.guest, tt.dir)
			}
		})
	}
}

func TestGuestSize(t *testing.T) {
	q := resource.MustParse
	tests := []struct {
		name    string
		domain  kubevirtv1.DomainSpec
		cpus    int
		memMiB  int
		wantErr string
	}{
		{name: "nothing asked", cpus: 1, memMiB: 1024},
		{name: "requests", domain: kubevirtv1.DomainSpec{Resources: kubevirtv1.ResourceRequirements{
			Requests: corev1.ResourceList{"cpu": q("1500m"), "memory": q("1536Mi")}}}, cpus: 2, memMiB: 1536},
		{name: "limit wins for cpu, request for memory", domain: kubevirtv1.DomainSpec{Resources: kubevirtv1.ResourceRequirements{
			Requests: corev1.ResourceList{"cpu": q("1"), "memory": q("1Gi")},
			Limits:   corev1.ResourceList{"cpu": q("3"), "memory": q("2Gi")}}}, cpus: 3, memMiB: 1024},
		{name: "topology and guest memory", domain: kubevirtv1.DomainSpec{
			CPU:       &kubevirtv1.CPU{Sockets: 1, Cores: 2, Threads: 2},
			Memory:    &kubevirtv1.Memory{Guest: ptrTo(q("768Mi"))},
			Resources: kubevirtv1.ResourceRequirements{Requests: corev1.ResourceList{"cpu": q("7"), "memory": q("4Gi")}}}, cpus: 4, memMiB: 768},
		{name: "decimal memory rounds up", domain: kubevirtv1.DomainSpec{Resources: kubevirtv1.ResourceRequirements{
			Requests: corev1.ResourceList{"memory": q("1G")}}}, cpus: 1, memMiB: 954},
		{name: "too little memory", domain: kubevirtv1.DomainSpec{Resources: kubevirtv1.ResourceRequirements{
			Requests: corev1.ResourceList{"memory": q("64Mi")}}}, wantErr: "guest memory 64 MiB: must be in 256..65536 MiB"},
		{name: "too many cpus", domain: kubevirtv1.DomainSpec{CPU: &kubevirtv1.CPU{Sockets: 8, Cores: 8, Threads: 2}}, wantErr: "spec.domain.cpu 8x8x2: 128 vCPUs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vmi := &kubevirtv1.VirtualMachineInstance{Spec: kubevirtv1.VirtualMachineInstanceSpec{Domain: tt.domain}}
			cpus, mem, err := guestSize(vmi)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("guestSize error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || cpus != tt.cpus || mem != tt.memMiB {
				t.Fatalf("guestSize = %d vCPU, %d MiB, %v; want %d, %d", cpus, mem, err, tt.cpus, tt.memMiB)
			}
		})
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestValidateMode(t *testing.T) {
	images := &ImageMap{Images: []ImageMapping{{Image: "*", Guest: "debian-bookworm"}}}
	tests := []struct {
		name string
		opts Options
		err  string
	}{
		{name: "default is sshd", opts: Options{}},
		{name: "qemu", opts: Options{Mode: ModeQEMU, QEMU: QEMUOptions{Images: images, Accel: qemu.AccelTCG}}},
		{name: "unknown mode", opts: Options{Mode: "firecracker"}, err: `option Mode "firecracker": must be "sshd" or "qemu"`},
		{name: "qemu without images", opts: Options{Mode: ModeQEMU}, err: "option QEMU.Images: must be set"},
		{name: "bad accel", opts: Options{Mode: ModeQEMU, QEMU: QEMUOptions{Images: images, Accel: "hvf"}}, err: `option QEMU.Accel "hvf"`},
		{name: "negative timeout", opts: Options{Mode: ModeQEMU, QEMU: QEMUOptions{Images: images, BootTimeout: -time.Second}}, err: "option QEMU.BootTimeout -1s"},
		{name: "missing console dir", opts: Options{Mode: ModeQEMU, QEMU: QEMUOptions{Images: images, ConsoleDir: "/nonexistent/consoles"}}, err: `option QEMU.ConsoleDir "/nonexistent/consoles"`},
		{name: "relative cache", opts: Options{Mode: ModeQEMU, QEMU: QEMUOptions{Images: images, CacheHome: "cache"}}, err: `option QEMU.CacheHome "cache"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.validateMode()
			if tt.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if tt.opts.Mode == ModeQEMU && tt.opts.QEMU.BootTimeout != DefaultGuestBootTimeout {
					t.Errorf("BootTimeout default = %s", tt.opts.QEMU.BootTimeout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("validateMode error = %v, want %q", err, tt.err)
			}
		})
	}
}
