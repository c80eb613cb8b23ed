// Package kube is the executor's access to Kubernetes and KubeVirt: the
// clients, the shape of a job's Secret and VirtualMachineInstance, creating
// them, waiting until the VMI runs, finding them again in later stages,
// deleting them, and garbage-collecting what was left behind.
//
// # Objects of one job
//
// prepare creates, in this order:
//
//  1. the Secret <vmi>-credentials (type Opaque) holding everything secret
//     and everything later stages need (see the Key* constants);
//  2. the VirtualMachineInstance, whose first-boot volume references the
//     Secret (userDataSecretRef / networkDataSecretRef, never inline data);
//  3. an ownerReference on the Secret pointing at the VMI, so Kubernetes'
//     garbage collector deletes the Secret with the VMI.
//
// Names come from package naming; labels and annotations are the same on
// both objects. No secret material is ever put in a spec, label or
// annotation.
//
// # Readiness, as KubeVirt reports it
//
// A VMI is running when status.phase is Running and
// status.interfaces[0].ipAddress is set; status.nodeName says where it was
// scheduled. It has failed when status.phase is Failed (the reason comes from
// status.reason and the conditions), or when it has a condition of type
// PodScheduled with status False and reason Unschedulable (its message says
// why). A VMI stand-in in tests sets exactly these fields.
//
// # Permissions
//
// Everything here works with the Role in deploy/rbac.yaml: VMIs get, list,
// watch, create, delete; Secrets get, list, create, patch, delete.
package kube
