// Package policy merges the runner's defaults with what a job asked for and
// checks the result against the administrator's bounds.
//
// Job variables are untrusted: a job may pick another image, machine type,
// architecture, time to live or resources only inside the [Policy]. The
// runner's own defaults are trusted (the administrator wrote them) but are
// checked for consistency too, so a bad flag is caught before anything is
// created. Every refusal is an [inputerr.Error] naming the variable as users
// write it (VM_CPU_REQUEST) or the flag (--default-cpu-request), the value
// and the rule.
package policy

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/inputerr"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/jobenv"
)

// Defaults are the runner's --default-* flags. Nil quantities are unset.
type Defaults struct {
	Image           string
	ImagePullPolicy string // Always, IfNotPresent, Never or empty
	ImagePullSecret string
	MachineType     string
	Architecture    string
	TTL             time.Duration

	CPURequest, CPULimit         *resource.Quantity
	MemoryRequest, MemoryLimit   *resource.Quantity
	StorageRequest, StorageLimit *resource.Quantity
}

// Policy bounds what jobs may ask for. Zero values mean "no bound" for the
// maxima; an empty allow-list of machine types or architectures allows only
// the runner's default; an empty image allow-list allows any image.
type Policy struct {
	// AllowedImages are path.Match patterns ("registry.example.com/ci/*");
	// '*' does not cross '/'.
	AllowedImages []string
	// MaxCPU, MaxMemory and MaxStorage bound requests and limits.
	MaxCPU, MaxMemory, MaxStorage *resource.Quantity
	// MaxTTL bounds VM_TTL.
	MaxTTL time.Duration
	// AllowedMachineTypes and AllowedArchitectures extend the defaults.
	AllowedMachineTypes  []string
	AllowedArchitectures []string
}

// Flag names, used in errors about the runner's own configuration.
const (
	FlagDefaultImage        = "--default-image"
	FlagDefaultPullPolicy   = "--default-image-pull-policy"
	FlagDefaultMachineType  = "--default-machine-type"
	FlagDefaultArchitecture = "--default-architecture"
	FlagDefaultTTL          = "--default-ttl"
	FlagAllowedImages       = "--allowed-images"
	FlagMaxCPU              = "--max-cpu"
	FlagMaxMemory           = "--max-memory"
	FlagMaxStorage          = "--max-storage"
	FlagMaxTTL              = "--max-ttl"
)

// VM is the resolved, allowed description of the job's VM.
type VM struct {
	Image           string
	ImagePullPolicy string
	ImagePullSecret string
	MachineType     string
	Architecture    string
	TTL             time.Duration
	// Requests and Limits hold "cpu", "memory" and "ephemeral-storage"
	// where set.
	Requests, Limits map[string]resource.Quantity
}

// Validate checks the policy itself (image patterns are well-formed).
func (p Policy) Validate() error {
	var errs []error
	for _, pat := range p.AllowedImages {
		if _, err := path.Match(pat, ""); err != nil || pat == "" {
			errs = append(errs, inputerr.New(FlagAllowedImages, pat, "must be a glob pattern (path.Match syntax, e.g. registry.example.com/ci/*)"))
		}
	}
	return errors.Join(errs...)
}

// Validate checks the defaults that every job relies on.
func (d Defaults) Validate() error {
	var errs []error
	if d.Image == "" {
		errs = append(errs, inputerr.New(FlagDefaultImage, "", "is required: the containerDisk image jobs run in unless they set image:"))
	}
	switch d.ImagePullPolicy {
	case "", "Always", "IfNotPresent", "Never":
	default:
		errs = append(errs, inputerr.New(FlagDefaultPullPolicy, d.ImagePullPolicy, "must be Always, IfNotPresent or Never"))
	}
	if d.MachineType == "" {
		errs = append(errs, inputerr.New(FlagDefaultMachineType, "", "is required"))
	}
	if d.Architecture == "" {
		errs = append(errs, inputerr.New(FlagDefaultArchitecture, "", "is required"))
	}
	if d.TTL <= 0 {
		errs = append(errs, inputerr.New(FlagDefaultTTL, d.TTL.String(), "must be positive"))
	}
	return errors.Join(errs...)
}

// Resolve merges the job's request over the defaults and checks the result
// against the policy. It reports every problem at once.
func Resolve(d Defaults, req jobenv.VMRequest, p Policy) (VM, error) {
	if err := errors.Join(d.Validate(), p.Validate()); err != nil {
		return VM{}, err
	}
	var errs []error
	vm := VM{
		Image:           d.Image,
		ImagePullPolicy: d.ImagePullPolicy,
		ImagePullSecret: d.ImagePullSecret,
		MachineType:     d.MachineType,
		Architecture:    d.Architecture,
		TTL:             d.TTL,
		Requests:        map[string]resource.Quantity{},
		Limits:          map[string]resource.Quantity{},
	}

	if req.Image != "" && req.Image != d.Image {
		if len(p.AllowedImages) > 0 && !matchAny(p.AllowedImages, req.Image) {
			errs = append(errs, inputerr.New(jobenv.VarJobImage, req.Image,
				"is not allowed by the runner's %s (%s)", FlagAllowedImages, strings.Join(p.AllowedImages, ", ")))
		}
		vm.Image = req.Image
	}
	if req.MachineType != "" && req.MachineType != d.MachineType {
		allowed := union(d.MachineType, p.AllowedMachineTypes)
		if !slices.Contains(allowed, req.MachineType) {
			errs = append(errs, inputerr.New(jobenv.VarMachineType, req.MachineType,
				"must be one of the machine types this runner allows: %s", strings.Join(allowed, ", ")))
		}
		vm.MachineType = req.MachineType
	}
	if req.Architecture != "" && req.Architecture != d.Architecture {
		allowed := union(d.Architecture, p.AllowedArchitectures)
		if !slices.Contains(allowed, req.Architecture) {
			errs = append(errs, inputerr.New(jobenv.VarArchitecture, req.Architecture,
				"must be one of the architectures this runner allows: %s", strings.Join(allowed, ", ")))
		}
		vm.Architecture = req.Architecture
	}
	if req.TTL != 0 {
		if p.MaxTTL > 0 && req.TTL > p.MaxTTL {
			errs = append(errs, inputerr.New(jobenv.VarTTL, req.TTL.String(),
				"exceeds the runner's %s of %s", FlagMaxTTL, p.MaxTTL))
		}
		vm.TTL = req.TTL
	}

	for _, r := range []struct {
		resource         string
		max              *resource.Quantity
		maxFlag          string
		defReq, defLim   *resource.Quantity
		jobReq, jobLim   *resource.Quantity
		reqVar, limVar   string
		reqFlag, limFlag string
	}{
		{"cpu", p.MaxCPU, FlagMaxCPU, d.CPURequest, d.CPULimit, req.CPURequest, req.CPULimit,
			jobenv.VarCPURequest, jobenv.VarCPULimit, "--default-cpu-request", "--default-cpu-limit"},
		{"memory", p.MaxMemory, FlagMaxMemory, d.MemoryRequest, d.MemoryLimit, req.MemoryRequest, req.MemoryLimit,
			jobenv.VarMemoryRequest, jobenv.VarMemoryLimit, "--default-memory-request", "--default-memory-limit"},
		{"ephemeral-storage", p.MaxStorage, FlagMaxStorage, d.StorageRequest, d.StorageLimit, req.StorageRequest, req.StorageLimit,
			jobenv.VarStorageRequest, jobenv.VarStorageLimit, "--default-storage-request", "--default-storage-limit"},
	} {
		reqQ, reqName := pick(r.jobReq, r.reqVar, r.defReq, r.reqFlag)
		limQ, limName := pick(r.jobLim, r.limVar, r.defLim, r.limFlag)
		if r.max != nil {
			for _, v := range []struct {
				q    *resource.Quantity
				name string
			}{{reqQ, reqName}, {limQ, limName}} {
				if v.q != nil && v.q.Cmp(*r.max) > 0 {
					errs = append(errs, inputerr.New(v.name, v.q.String(),
						"exceeds the runner's %s of %s", r.maxFlag, r.max.String()))
				}
			}
		}
		if reqQ != nil && limQ != nil && reqQ.Cmp(*limQ) > 0 {
			// Name the job's variable when the job set either side.
			name, other, otherName := reqName, limQ, limName
			if r.jobReq == nil && r.jobLim != nil {
				name, other, otherName = limName, reqQ, reqName
				errs = append(errs, inputerr.New(name, limQ.String(),
					"must be at least the %s request (%s from %s)", r.resource, other.String(), otherName))
			} else {
				errs = append(errs, inputerr.New(name, reqQ.String(),
					"must not exceed the %s limit (%s from %s)", r.resource, other.String(), otherName))
			}
		}
		if reqQ != nil {
			vm.Requests[r.resource] = reqQ.DeepCopy()
		}
		if limQ != nil {
			vm.Limits[r.resource] = limQ.DeepCopy()
		}
	}
	if _, ok := vm.Requests["memory"]; !ok {
		if _, ok := vm.Limits["memory"]; !ok {
			errs = append(errs, inputerr.New("--default-memory-request", "", "is required: KubeVirt needs the guest's memory size"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return VM{}, err
	}
	return vm, nil
}

// pick returns the job's value when set, else the runner default, with the
// name to use in errors.
func pick(job *resource.Quantity, jobName string, def *resource.Quantity, defName string) (*resource.Quantity, string) {
	if job != nil {
		return job, jobName
	}
	if def != nil {
		return def, defName
	}
	return nil, ""
}

func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}

func union(def string, extra []string) []string {
	out := []string{def}
	for _, e := range extra {
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out
}

// String describes the VM for the job log: image, machine, architecture,
// resources and TTL.
func (vm VM) String() string {
	res := func(m map[string]resource.Quantity) string {
		var parts []string
		for _, k := range []string{"cpu", "memory", "ephemeral-storage"} {
			if q, ok := m[k]; ok {
				parts = append(parts, k+"="+q.String())
			}
		}
		if len(parts) == 0 {
			return "-"
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprintf("image %s, machine %s/%s, requests %s, limits %s, ttl %s",
		vm.Image, vm.MachineType, vm.Architecture, res(vm.Requests), res(vm.Limits), vm.TTL)
}
