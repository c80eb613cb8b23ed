// Package kubeenv runs a real, throwaway Kubernetes control plane for tests
// and demos: an etcd and a kube-apiserver on loopback with the KubeVirt
// VirtualMachineInstance and VirtualMachine CRDs installed, including
// KubeVirt's full OpenAPI validation.
//
// It plays the role controller-runtime's envtest plays for controllers, with
// what this project needs on top: RBAC authorization (so least-privilege
// manifests are really enforced), ServiceAccount tokens from the TokenRequest
// API, the KubeVirt CRDs, and the ability to stop and restart the API server
// alone for fault tests.
//
// There is no controller-manager, scheduler or kubelet: nothing runs Pods,
// garbage-collects objects through ownerReferences, or finalises deleted
// namespaces. Whatever plays KubeVirt (a VMI stand-in) must be started by the
// caller.
//
// # Binaries
//
// The etcd and kube-apiserver binaries are built from the Go module proxy by
// hack/kube-binaries.sh (5 to 7.5 minutes cold on 2 cores, then cached).
// [Start] looks for them in [Options.BinariesDir], then in $KUBE_BINARIES_DIR,
// then in the script's cache directory, and runs the script when they are
// missing (unless [Options.NoBuild] is set, in which case it fails with the
// command to run). It never skips.
//
// # Use from go test
//
//	var env *kubeenv.Env
//
//	func TestMain(m *testing.M) {
//		os.Exit(kubeenv.RunMain(m, kubeenv.Options{}, func(e *kubeenv.Env) { env = e }))
//	}
//
// or, for a private environment per test (fault tests that stop the API
// server), env := kubeenv.StartForTest(t, kubeenv.Options{}).
//
// # Use from a program
//
//	env, err := kubeenv.Start(ctx, kubeenv.Options{})
//	if err != nil { ... }
//	defer env.Stop()
//	fmt.Println("KUBECONFIG=" + env.AdminKubeconfig())
//
// The CRD manifests in crds/ are generated; regenerate them with
// go generate ./test/kubeenv after bumping kubevirt.io/api.
package kubeenv

//go:generate go run ./internal/crdgen -out crds
