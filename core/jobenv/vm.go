package jobenv

import (
	"errors"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// VMRequest is what the job asked for through CI_JOB_IMAGE and the VM_*
// variables. A zero field means "not set: use the runner default". Values
// are syntactically valid; package policy decides whether they are allowed.
type VMRequest struct {
	Image        string
	MachineType  string
	Architecture string
	TTL          time.Duration

	CPURequest, CPULimit         *resource.Quantity
	MemoryRequest, MemoryLimit   *resource.Quantity
	StorageRequest, StorageLimit *resource.Quantity
}

// ReadVMRequest parses CUSTOM_ENV_CI_JOB_IMAGE and CUSTOM_ENV_VM_*. An
// empty variable counts as unset. Every malformed variable is reported, in
// one joined error.
func ReadVMRequest(lookup Lookup) (VMRequest, error) {
	var (
		r    VMRequest
		errs []error
	)
	get := func(name string) (string, bool) {
		v, ok := job(lookup, name)
		return v, ok && v != ""
	}
	if v, ok := get(VarJobImage); ok {
		img, err := ParseImage(VarJobImage, v)
		errs = append(errs, err)
		r.Image = img
	}
	if v, ok := get(VarMachineType); ok {
		mt, err := ParseMachineType(VarMachineType, v)
		errs = append(errs, err)
		r.MachineType = mt
	}
	if v, ok := get(VarArchitecture); ok {
		a, err := ParseArchitecture(VarArchitecture, v)
		errs = append(errs, err)
		r.Architecture = a
	}
	if v, ok := get(VarTTL); ok {
		d, err := ParseTTL(VarTTL, v)
		errs = append(errs, err)
		r.TTL = d
	}
	for _, q := range []struct {
		name string
		dst  **resource.Quantity
	}{
		{VarCPURequest, &r.CPURequest}, {VarCPULimit, &r.CPULimit},
		{VarMemoryRequest, &r.MemoryRequest}, {VarMemoryLimit, &r.MemoryLimit},
		{VarStorageRequest, &r.StorageRequest}, {VarStorageLimit, &r.StorageLimit},
	} {
		v, ok := get(q.name)
		if !ok {
			continue
		}
		parsed, err := ParseQuantity(q.name, v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		*q.dst = &parsed
	}
	return r, errors.Join(errs...)
}
