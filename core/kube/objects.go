package kube

import (
	"encoding/json"
	"fmt"
	"maps"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/credentials"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/policy"
	pluginv1 "github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi/proto/v1"
)

// Data keys of the job's Secret. KubeVirt's cloudInitNoCloud and
// cloudInitConfigDrive secret references read KeyUserData and
// KeyNetworkData; the rest is for run and for the VMI stand-in in tests.
const (
	// KeyUserData is the first-boot user data the OS plugin rendered.
	KeyUserData = "userdata"
	// KeyNetworkData is the first-boot network data (may be empty).
	KeyNetworkData = "networkdata"
	// KeyUsername is the login name on the guest.
	KeyUsername = "username"
	// KeySSHPrivateKey is the per-job ed25519 client key, OpenSSH PEM.
	KeySSHPrivateKey = "ssh-privatekey"
	// KeyHostPublicKey is the public half of the per-job guest host key
	// (authorized_keys format); the transport accepts no other host key.
	KeyHostPublicKey = "host-public-key"
	// KeyPassword is the login password; present only when the OS plugin
	// has the "password" capability.
	KeyPassword = "password"
	// KeyRunRecipe is the OS plugin's RunRecipe as JSON (protojson with
	// proto field names), so run never starts the OS plugin.
	KeyRunRecipe = "run-recipe"
	// KeyTransport is the transport plugin's name.
	KeyTransport = "transport"
	// KeyTransportPort is the port the transport connects to on the VMI's
	// IP (decimal; --ssh-port).
	KeyTransportPort = "transport-port"
	// KeyTransportOptions are the --transport-option pairs as a JSON
	// object; they may hold secrets, hence the Secret.
	KeyTransportOptions = "transport-options"
)

// Volume, disk and network names inside the VMI.
const (
	containerDiskName = "containerdisk"
	cloudInitDiskName = "cloudinitdisk"
	podNetworkName    = "default"
	archNodeLabel     = "kubernetes.io/arch"
)

// Job is everything needed to build one job's Secret and VMI.
type Job struct {
	Namespace string
	Names     naming.Names
	// Job is the GitLab job's identity and metadata.
	Job jobenv.Job
	// VM is the resolved VM description.
	VM policy.VM
	// Created is the creation time (the TTL counts from it).
	Created time.Time

	// Boot is the OS plugin's rendering.
	Boot *pluginv1.RenderResponse
	// OSPlugin and Transport name the plugins.
	OSPlugin, Transport string
	// Username, Credentials, Port and TransportOptions say how to log in.
	Username         string
	Credentials      *credentials.Set
	Port             int
	TransportOptions map[string]string

	// Version is the executor's version, the app.kubernetes.io/version
	// label (omitted when empty).
	Version string

	// Placement from runner flags.
	NodeSelector      map[string]string
	Tolerations       []corev1.Toleration
	PriorityClassName string

	// KernelBoot, when set, boots the guest's kernel directly
	// (spec.domain.firmware.kernelBoot) from the job's image.
	KernelBoot *KernelBoot
}

// Labels returns the labels put on both objects.
func (j *Job) Labels() map[string]string {
	l := map[string]string{
		naming.LabelName:      naming.AppName,
		naming.LabelManagedBy: naming.AppName,
		naming.LabelInstance:  j.Names.VMI,
		naming.LabelComponent: naming.ComponentJobVM,
		naming.LabelID:        j.Names.VMI,
		naming.LabelRunnerID:  j.Job.RunnerID,
		naming.LabelJobID:     j.Job.JobID,
		naming.LabelExpires:   strconv.FormatInt(j.Created.Add(j.VM.TTL).Unix(), 10),
	}
	for k, v := range map[string]string{
		naming.LabelProjectID: j.Job.ProjectID,
		naming.LabelJobRef:    naming.LabelValue(j.Job.Ref),
		naming.LabelJobSHA:    naming.LabelValue(j.Job.SHA),
		naming.LabelVersion:   naming.LabelValue(j.Version),
	} {
		if v != "" {
			l[k] = v
		}
	}
	return l
}

// Annotations returns the annotations put on both objects.
func (j *Job) Annotations() map[string]string {
	a := map[string]string{
		naming.AnnotationCreated:         j.Created.UTC().Format(time.RFC3339),
		naming.AnnotationTTL:             j.VM.TTL.String(),
		naming.AnnotationOSPlugin:        j.OSPlugin,
		naming.AnnotationTransportPlugin: j.Transport,
	}
	if j.Job.Name != "" {
		a[naming.AnnotationJobName] = j.Job.Name
	}
	if j.Job.URL != "" {
		a[naming.AnnotationJobURL] = j.Job.URL
	}
	return a
}

// Secret builds the job's credential Secret.
func (j *Job) Secret() (*corev1.Secret, error) {
	if j.Boot == nil || j.Boot.GetRecipe() == nil {
		return nil, fmt.Errorf("secret %s: the OS plugin returned no run recipe", j.Names.Secret)
	}
	if j.Credentials == nil {
		return nil, fmt.Errorf("secret %s: no credentials", j.Names.Secret)
	}
	recipe, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(j.Boot.GetRecipe())
	if err != nil {
		return nil, fmt.Errorf("secret %s: encode run recipe: %w", j.Names.Secret, err)
	}
	opts := j.TransportOptions
	if opts == nil {
		opts = map[string]string{}
	}
	optsJSON, err := json.Marshal(opts)
	if err != nil {
		return nil, fmt.Errorf("secret %s: encode transport options: %w", j.Names.Secret, err)
	}
	data := map[string][]byte{
		KeyUserData:         j.Boot.GetUserData(),
		KeyNetworkData:      j.Boot.GetNetworkData(),
		KeyUsername:         []byte(j.Username),
		KeySSHPrivateKey:    j.Credentials.Client.PrivatePEM,
		KeyHostPublicKey:    []byte(j.Credentials.Host.Public),
		KeyRunRecipe:        recipe,
		KeyTransport:        []byte(j.Transport),
		KeyTransportPort:    []byte(strconv.Itoa(j.Port)),
		KeyTransportOptions: optsJSON,
	}
	if j.Credentials.Password != "" {
		data[KeyPassword] = []byte(j.Credentials.Password)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        j.Names.Secret,
			Namespace:   j.Namespace,
			Labels:      j.Labels(),
			Annotations: j.Annotations(),
		},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}, nil
}

// VMI builds the job's VirtualMachineInstance.
func (j *Job) VMI() (*kubevirtv1.VirtualMachineInstance, error) {
	if j.Boot == nil {
		return nil, fmt.Errorf("vmi %s: no first-boot data", j.Names.VMI)
	}
	ref := &corev1.LocalObjectReference{Name: j.Names.Secret}
	var netRef *corev1.LocalObjectReference
	// Empty network data means "DHCP": no reference, so KubeVirt does not
	// look for a networkdata key that holds nothing.
	if len(j.Boot.GetNetworkData()) > 0 {
		netRef = ref
	}
	bootVolume := kubevirtv1.Volume{Name: cloudInitDiskName}
	switch ds := j.Boot.GetDatasource(); ds {
	case pluginv1.Datasource_DATASOURCE_NOCLOUD:
		bootVolume.CloudInitNoCloud = &kubevirtv1.CloudInitNoCloudSource{UserDataSecretRef: ref, NetworkDataSecretRef: netRef}
	case pluginv1.Datasource_DATASOURCE_CONFIG_DRIVE:
		bootVolume.CloudInitConfigDrive = &kubevirtv1.CloudInitConfigDriveSource{UserDataSecretRef: ref, NetworkDataSecretRef: netRef}
	default:
		return nil, fmt.Errorf("vmi %s: the OS plugin %s asked for datasource %s; KubeVirt offers NoCloud and ConfigDrive", j.Names.VMI, j.OSPlugin, ds)
	}

	nodeSelector := maps.Clone(j.NodeSelector)
	if nodeSelector == nil {
		nodeSelector = map[string]string{}
	}
	nodeSelector[archNodeLabel] = j.VM.Architecture

	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{
			Name:        j.Names.VMI,
			Namespace:   j.Namespace,
			Labels:      j.Labels(),
			Annotations: j.Annotations(),
		},
		Spec: kubevirtv1.VirtualMachineInstanceSpec{
			Architecture: j.VM.Architecture,
			Domain: kubevirtv1.DomainSpec{
				Machine: &kubevirtv1.Machine{Type: j.VM.MachineType},
				Resources: kubevirtv1.ResourceRequirements{
					Requests: resourceList(j.VM.Requests),
					Limits:   resourceList(j.VM.Limits),
				},
				Devices: kubevirtv1.Devices{
					Disks: []kubevirtv1.Disk{
						{Name: containerDiskName, BootOrder: ptr.To[uint](1), DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}},
						{Name: cloudInitDiskName, DiskDevice: kubevirtv1.DiskDevice{Disk: &kubevirtv1.DiskTarget{Bus: kubevirtv1.DiskBusVirtio}}},
					},
					Interfaces: []kubevirtv1.Interface{{
						Name:                   podNetworkName,
						InterfaceBindingMethod: kubevirtv1.InterfaceBindingMethod{Masquerade: &kubevirtv1.InterfaceMasquerade{}},
					}},
				},
			},
			Networks: []kubevirtv1.Network{{Name: podNetworkName, NetworkSource: kubevirtv1.NetworkSource{Pod: &kubevirtv1.PodNetwork{}}}},
			Volumes: []kubevirtv1.Volume{
				{Name: containerDiskName, VolumeSource: kubevirtv1.VolumeSource{ContainerDisk: &kubevirtv1.ContainerDiskSource{
					Image:           j.VM.Image,
					ImagePullPolicy: corev1.PullPolicy(j.VM.ImagePullPolicy),
					ImagePullSecret: j.VM.ImagePullSecret,
				}}},
				bootVolume,
			},
			NodeSelector:                  nodeSelector,
			Tolerations:                   j.Tolerations,
			PriorityClassName:             j.PriorityClassName,
			TerminationGracePeriodSeconds: ptr.To[int64](0),
		},
	}
	if j.KernelBoot != nil {
		if err := j.KernelBoot.Validate(); err != nil {
			return nil, fmt.Errorf("vmi %s: kernel boot: %w", j.Names.VMI, err)
		}
		vmi.Spec.Domain.Firmware = j.KernelBoot.firmware(j.VM)
	}
	return vmi, nil
}

func resourceList(m map[string]resource.Quantity) corev1.ResourceList {
	if len(m) == 0 {
		return nil
	}
	out := make(corev1.ResourceList, len(m))
	for k, v := range m {
		out[corev1.ResourceName(k)] = v.DeepCopy()
	}
	return out
}

// String names the job's objects; it never prints first-boot data or
// credentials (both hold private keys).
func (j Job) String() string {
	return fmt.Sprintf("job %s/%s (secret %s, os %s, transport %s)", j.Namespace, j.Names.VMI, j.Names.Secret, j.OSPlugin, j.Transport)
}

// GoString keeps %#v from printing secrets.
func (j Job) GoString() string { return "kube.Job{" + j.String() + "}" }
