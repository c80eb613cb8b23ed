// Package integration holds the executor's integration tests on real
// parts: a real etcd + kube-apiserver with KubeVirt's CRDs and full
// validation schemas (test/kubeenv), the runner's least-privilege Role from
// deploy/rbac.yaml (the tests authenticate as its ServiceAccount, never as
// admin), and the executor binary itself run as separate processes, the way
// gitlab-runner drives it.
//
// The admin identity only plays KubeVirt: it updates VMI status the way
// virt-controller does (the VMI CRD has no status subresource, so the whole
// object is updated).
package integration
