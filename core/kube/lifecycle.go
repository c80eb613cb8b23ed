package kube

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
)

// Create creates the Secret, then the VMI, then makes the VMI the Secret's
// owner. A leftover of an earlier attempt of the same job (same
// deterministic name, our labels) is deleted first and waited for; an
// object of the same name that is not ours is never touched. On error the
// caller deletes whatever exists by name (see [Clients.Delete]).
func (c *Clients) Create(ctx context.Context, secret *corev1.Secret, vmi *kubevirtv1.VirtualMachineInstance) (*kubevirtv1.VirtualMachineInstance, error) {
	secrets := c.Kube.CoreV1().Secrets(c.Namespace)
	vmis := c.Virt.KubevirtV1().VirtualMachineInstances(c.Namespace)

	_, err := secrets.Create(ctx, secret, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		err = c.replaceSecret(ctx, secret)
	}
	if err != nil {
		return nil, fmt.Errorf("create secret %s/%s: %w", c.Namespace, secret.Name, err)
	}

	created, err := vmis.Create(ctx, vmi, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		if err = c.removeLeftoverVMI(ctx, vmi.Name); err == nil {
			created, err = vmis.Create(ctx, vmi, metav1.CreateOptions{})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create vmi %s/%s: %w", c.Namespace, vmi.Name, err)
	}

	if err := c.setOwner(ctx, secret.Name, created); err != nil {
		return nil, err
	}
	return created, nil
}

// setOwner points the Secret's ownerReferences at the VMI, so the garbage
// collector removes the Secret with it. blockOwnerDeletion stays unset: it
// would need update rights on the VMI's finalizers, which the Role does not
// grant, and nothing here needs deletion ordering.
func (c *Clients) setOwner(ctx context.Context, secret string, vmi *kubevirtv1.VirtualMachineInstance) error {
	ref := metav1.OwnerReference{
		APIVersion: kubevirtv1.GroupVersion.String(),
		Kind:       "VirtualMachineInstance",
		Name:       vmi.Name,
		UID:        vmi.UID,
	}
	patch, err := jsonMarshal(map[string]any{"metadata": map[string]any{"ownerReferences": []metav1.OwnerReference{ref}}})
	if err != nil {
		return err
	}
	_, err = c.Kube.CoreV1().Secrets(c.Namespace).Patch(ctx, secret, types.MergePatchType, patch, metav1.PatchOptions{})
	if err != nil {
		return fmt.Errorf("set owner of secret %s/%s to vmi %s: %w", c.Namespace, secret, vmi.Name, err)
	}
	return nil
}

// replaceSecret deletes our leftover Secret of the same name and creates
// the new one.
func (c *Clients) replaceSecret(ctx context.Context, secret *corev1.Secret) error {
	secrets := c.Kube.CoreV1().Secrets(c.Namespace)
	old, err := secrets.Get(ctx, secret.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get existing: %w", err)
	}
	if !ours(old.Labels, secret.Name[:len(secret.Name)-len(naming.SecretSuffix)]) {
		return fmt.Errorf("a secret of that name exists and is not managed by %s; refusing to replace it", naming.AppName)
	}
	err = secrets.Delete(ctx, secret.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &old.UID}})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete leftover: %w", err)
	}
	_, err = secrets.Create(ctx, secret, metav1.CreateOptions{})
	return err
}

// removeLeftoverVMI deletes our VMI of the same name (a leftover of an
// earlier attempt, perhaps still terminating) and waits until it is gone.
func (c *Clients) removeLeftoverVMI(ctx context.Context, name string) error {
	vmis := c.Virt.KubevirtV1().VirtualMachineInstances(c.Namespace)
	old, err := vmis.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("get existing: %w", err)
	}
	if !ours(old.Labels, name) {
		return fmt.Errorf("a vmi of that name exists and is not managed by %s; refusing to replace it", naming.AppName)
	}
	if old.DeletionTimestamp == nil {
		err = vmis.Delete(ctx, name, metav1.DeleteOptions{
			Preconditions:     &metav1.Preconditions{UID: &old.UID},
			PropagationPolicy: ptrTo(metav1.DeletePropagationBackground),
		})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete leftover: %w", err)
		}
	}
	if err := c.WaitGone(ctx, name); err != nil {
		return fmt.Errorf("wait for leftover to go: %w", err)
	}
	return nil
}

// ours reports whether labels mark an object of job vmiName made by us.
func ours(labels map[string]string, vmiName string) bool {
	return labels[naming.LabelManagedBy] == naming.AppName && labels[naming.LabelID] == vmiName
}

// Deleted says which objects a Delete call removed (false: already gone).
type Deleted struct {
	VMI, Secret bool
}

// Delete deletes the job's VMI and Secret. It is idempotent: an object
// that does not exist counts as deleted. It does not wait for the objects
// to disappear (KubeVirt's finalizers may keep a VMI for a few seconds; a
// later prepare of the same job waits for it, see Create).
//
// Propagation is Background: the API call returns at once and Kubernetes
// removes dependents (the virt-launcher Pod, the owned Secret) afterwards.
// The Secret is deleted explicitly anyway, so nothing depends on the
// garbage collector running.
func (c *Clients) Delete(ctx context.Context, names naming.Names) (Deleted, error) {
	var (
		d    Deleted
		errs []error
	)
	bg := metav1.DeleteOptions{PropagationPolicy: ptrTo(metav1.DeletePropagationBackground)}
	err := c.Virt.KubevirtV1().VirtualMachineInstances(c.Namespace).Delete(ctx, names.VMI, bg)
	switch {
	case err == nil:
		d.VMI = true
	case !apierrors.IsNotFound(err):
		errs = append(errs, fmt.Errorf("delete vmi %s/%s: %w", c.Namespace, names.VMI, err))
	}
	err = c.Kube.CoreV1().Secrets(c.Namespace).Delete(ctx, names.Secret, bg)
	switch {
	case err == nil:
		d.Secret = true
	case !apierrors.IsNotFound(err):
		errs = append(errs, fmt.Errorf("delete secret %s/%s: %w", c.Namespace, names.Secret, err))
	}
	return d, errors.Join(errs...)
}

// Get reads the job's Secret and VMI, one GET each.
func (c *Clients) Get(ctx context.Context, names naming.Names) (*corev1.Secret, *kubevirtv1.VirtualMachineInstance, error) {
	secret, err := c.Kube.CoreV1().Secrets(c.Namespace).Get(ctx, names.Secret, metav1.GetOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("get secret %s/%s: %w", c.Namespace, names.Secret, err)
	}
	vmi, err := c.GetVMI(ctx, names.VMI)
	if err != nil {
		return nil, nil, err
	}
	return secret, vmi, nil
}

// GetVMI reads one VMI.
func (c *Clients) GetVMI(ctx context.Context, name string) (*kubevirtv1.VirtualMachineInstance, error) {
	vmi, err := c.Virt.KubevirtV1().VirtualMachineInstances(c.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get vmi %s/%s: %w", c.Namespace, name, err)
	}
	return vmi, nil
}

func ptrTo[T any](v T) *T { return &v }
