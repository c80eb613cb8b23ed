package kubeenv_test

import (
	"context"
	"fmt"
	"log"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"kubevirt.io/client-go/kubevirt"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// A standalone program (a demo) starts the environment, prepares a
// namespace for the runner and hands out the runner's kubeconfig.
func ExampleStart() {
	ctx := context.Background()
	env, err := kubeenv.Start(ctx, kubeenv.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer env.Stop()

	ns, err := env.NewNamespace(ctx, "gitlab-runner")
	if err != nil {
		log.Fatal(err)
	}
	if err := env.ApplyRBAC(ctx, ns); err != nil {
		log.Fatal(err)
	}
	cfg, kubeconfig, err := env.ServiceAccountConfig(ctx, ns, "gitlab-runner-kubevirt")
	if err != nil {
		log.Fatal(err)
	}
	kv, err := kubevirt.NewForConfig(cfg)
	if err != nil {
		log.Fatal(err)
	}
	vmis, err := kv.KubevirtV1().VirtualMachineInstances(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("KUBECONFIG=%s (%d VMIs)\n", kubeconfig, len(vmis.Items))
}
