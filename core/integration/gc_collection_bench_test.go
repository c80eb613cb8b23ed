package integration

import (
	"context"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/bench"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
)

// gcBenchPairs is how many VMI + Secret pairs one benchmark op deletes,
// gcBenchRounds how often each way runs (alternating).
const (
	gcBenchPairs  = 500
	gcBenchRounds = 3
)

// BenchmarkGCDeletion compares, on the real API server, the two ways gc
// could delete expired jobs: one DELETE per object from 32 workers (what
// gc does) and one DeleteCollection per kind with the label selector
// "ours and expires < now". The sub-benchmarks alternate, gcBenchRounds
// times each (per-object, collection, per-object#01, ...). Each op deletes
// gcBenchPairs VMIs and as many Secrets, created beforehand with the timer
// stopped; objects/s and the API server's CPU per object are reported:
//
//	go test ./core/integration -run '^$' -bench GCDeletion -benchtime 1x
func BenchmarkGCDeletion(b *testing.B) {
	cfg := env.AdminConfig()
	cfg.QPS, cfg.Burst = -1, 0 // no client-side limit: measure the server
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	vc, err := kubevirt.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	bg := metav1.DeletePropagationBackground
	for _, mode := range slices.Repeat([]string{"per-object", "collection"}, gcBenchRounds) {
		b.Run(mode, func(b *testing.B) {
			var objects int
			var apiCPU time.Duration
			for range b.N {
				b.StopTimer()
				ns, uids := createExpiredPairs(b, kc, vc, gcBenchPairs)
				cpu0 := apiserverCPU(b)
				b.StartTimer()
				switch mode {
				case "per-object":
					parallel(b, gcBenchPairs, 32, func(i int) error {
						name := benchVMIName(i)
						err := vc.KubevirtV1().VirtualMachineInstances(ns).Delete(b.Context(), name, metav1.DeleteOptions{
							PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uids[i][0]}})
						if err != nil {
							return err
						}
						return kc.CoreV1().Secrets(ns).Delete(b.Context(), naming.SecretName(name), metav1.DeleteOptions{
							PropagationPolicy: &bg, Preconditions: &metav1.Preconditions{UID: &uids[i][1]}})
					})
				case "collection":
					sel := metav1.ListOptions{LabelSelector: ourSelectorForBench() + "," + naming.LabelExpires + "<" + strconv.FormatInt(time.Now().Unix(), 10)}
					parallel(b, 2, 2, func(i int) error {
						if i == 0 {
							return vc.KubevirtV1().VirtualMachineInstances(ns).DeleteCollection(b.Context(), metav1.DeleteOptions{PropagationPolicy: &bg}, sel)
						}
						return kc.CoreV1().Secrets(ns).DeleteCollection(b.Context(), metav1.DeleteOptions{PropagationPolicy: &bg}, sel)
					})
				}
				b.StopTimer()
				apiCPU += apiserverCPU(b) - cpu0
				objects += 2 * gcBenchPairs
				left, err := kc.CoreV1().Secrets(ns).List(b.Context(), metav1.ListOptions{LabelSelector: naming.LabelID})
				if err != nil {
					b.Fatal(err)
				}
				if vl, err := vc.KubevirtV1().VirtualMachineInstances(ns).List(b.Context(), metav1.ListOptions{}); err != nil || len(vl.Items)+len(left.Items) != 0 {
					b.Fatalf("%s left %d Secrets and VMIs %v (%v)", mode, len(left.Items), vl, err)
				}
			}
			b.ReportMetric(float64(objects)/b.Elapsed().Seconds(), "objects/s")
			b.ReportMetric(float64(apiCPU.Microseconds())/1000/float64(objects), "apiserver-cpu-ms/object")
		})
	}
}

// ourSelectorForBench is the selector gc lists with (managed by us, with
// an id label).
func ourSelectorForBench() string {
	return naming.LabelManagedBy + "=" + naming.AppName + "," + naming.LabelID
}

func benchVMIName(i int) string { return "runner-1-" + strconv.Itoa(i) }

// createExpiredPairs creates n expired VMIs, each with its owned Secret
// (about the size of a real job's), in a fresh namespace.
func createExpiredPairs(b *testing.B, kc kubernetes.Interface, vc kubevirt.Interface, n int) (string, [][2]types.UID) {
	b.Helper()
	ns, err := env.NewNamespace(b.Context(), "gc-bench-")
	if err != nil {
		b.Fatal(err)
	}
	past := strconv.FormatInt(time.Now().Add(-time.Hour).Unix(), 10)
	uids := make([][2]types.UID, n)
	parallel(b, n, 24, func(i int) error {
		name := benchVMIName(i)
		labels := map[string]string{naming.LabelManagedBy: naming.AppName, naming.LabelID: name, naming.LabelExpires: past}
		v, err := vc.KubevirtV1().VirtualMachineInstances(ns).Create(b.Context(), &kubevirtv1.VirtualMachineInstance{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{"pad": strings.Repeat("x", 4096)}},
			Spec:       kubevirtv1.VirtualMachineInstanceSpec{Domain: kubevirtv1.DomainSpec{Devices: kubevirtv1.Devices{}}},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		s, err := kc.CoreV1().Secrets(ns).Create(b.Context(), &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: naming.SecretName(name), Labels: labels, OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "kubevirt.io/v1", Kind: "VirtualMachineInstance", Name: name, UID: v.UID}}},
			Data: map[string][]byte{"userdata": make([]byte, 4096)},
		}, metav1.CreateOptions{})
		if err != nil {
			return err
		}
		uids[i] = [2]types.UID{v.UID, s.UID}
		return nil
	})
	return ns, uids
}

// parallel runs f(0..n-1) on workers goroutines and fails b on the first
// error.
func parallel(b *testing.B, n, workers int, f func(int) error) {
	b.Helper()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
}

// apiserverCPU is the CPU time the test's kube-apiserver child used so
// far.
func apiserverCPU(b *testing.B) time.Duration {
	b.Helper()
	w, err := bench.WatchTree(context.Background(), os.Getpid(), time.Hour) // one sample
	if err != nil {
		b.Fatal(err)
	}
	var d time.Duration
	for _, p := range w.Stop() {
		if p.Exe == "kube-apiserver" {
			d += p.CPU
		}
	}
	if d == 0 {
		b.Fatalf("no kube-apiserver below pid %d", os.Getpid())
	}
	return d
}
