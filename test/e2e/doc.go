// Package e2e assembles the end-to-end environment of gitlab-runner-kubevirt
// and holds the lifecycle suite that runs on it.
//
// A [Bed] is everything a CI job needs except GitLab and a hypervisor:
//
//   - a real etcd + kube-apiserver with the KubeVirt CRDs (package kubeenv),
//   - a namespace with deploy/rbac.yaml applied, and a kubeconfig of its
//     ServiceAccount: the executor runs with least privilege, never admin,
//   - the VMI stand-in (package standin, admin) that plays KubeVirt and
//     serves each VMI's guest with a real sshd,
//   - a throwaway host account that plays the guest's login user,
//   - the executor binaries: the core and its plugins with plugins.lock,
//     laid out as `make build` does (BinDir/gitlab-runner-kubevirt,
//     BinDir/plugins/gitlab-runner-kubevirt-plugin-<name>).
//
// [Bed.RunnerConfig] is the [runners.custom] configuration that drives those
// binaries through the runner harness (package runner) exactly as
// gitlab-runner would.
//
// The tests (go test ./test/e2e) build their own binaries with
// [BuildBinaries] and need root: the stand-in binds port 22 on loopback
// addresses and the guest account is created with useradd. They need
// openssh-server (sshd) and passwd (useradd, userdel) from Debian; a missing
// tool fails the suite with the package to install. E2E_BIN_DIR names
// prebuilt binaries (`make build`'s bin/) to test instead.
//
// [StartControlPlane] and [StageConfig] are the parts the real-VM bed
// (package realvm) shares; the scaffolding the suites' tests share
// (TestMain, running a job, the leftover checks) is package e2etest.
package e2e
