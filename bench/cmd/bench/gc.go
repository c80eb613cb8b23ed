package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/bench"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
)

// gcReport is the part of `gc -o json` the benchmark checks.
type gcReport struct {
	ScannedVMIs    int `json:"scannedVMIs"`
	ScannedSecrets int `json:"scannedSecrets"`
	Items          []struct {
		Kind  string `json:"kind"`
		Error string `json:"error"`
	} `json:"items"`
}

// benchGC fills a fresh namespace with N labelled VMIs and their Secrets
// (copies of a real job's, half of them expired), then runs
// `gitlab-runner-kubevirt gc` as a process with the runner's RBAC and
// measures its wall time and peak RSS.
func (s *suite) benchGC(ctx context.Context) error {
	n := s.opts.gcObjects
	h, err := s.holdJob(ctx)
	if err != nil {
		return err
	}
	tmplVMI, err := s.bed.Virt.KubevirtV1().VirtualMachineInstances(s.bed.Namespace).Get(ctx, h.vmi, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("template vmi: %w", err)
	}
	tmplSecret, err := s.bed.Kube.CoreV1().Secrets(s.bed.Namespace).Get(ctx, naming.SecretName(h.vmi), metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("template secret: %w", err)
	}
	if err := s.release(ctx, h); err != nil {
		return err
	}
	ns, err := s.bed.Env.NewNamespace(ctx, "gc-bench-")
	if err != nil {
		return err
	}
	if err := s.bed.Env.ApplyRBAC(ctx, ns); err != nil {
		return err
	}
	_, kubeconfig, err := s.bed.Env.ServiceAccountConfig(ctx, ns, e2e.ServiceAccount)
	if err != nil {
		return err
	}
	cfg := s.bed.Env.AdminConfig()
	cfg.QPS, cfg.Burst = 5000, 10000
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("admin client: %w", err)
	}
	vc, err := kubevirt.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("admin kubevirt client: %w", err)
	}

	logf("gc: creating %d VMIs and %d Secrets in %s with %d workers", n, n, ns, s.opts.gcWorkers)
	now := time.Now()
	t0 := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, s.opts.gcWorkers)
	for range s.opts.gcWorkers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				expires := now.Add(time.Hour)
				if i%2 == 0 {
					expires = now.Add(-time.Hour)
				}
				if err := createPair(ctx, kc, vc, ns, tmplVMI, tmplSecret, 9_000_000+i, expires); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return err
	}
	create := time.Since(t0)
	logf("gc: created %d objects in %s", 2*n, create.Round(time.Millisecond))

	cmd := exec.CommandContext(ctx, s.bed.Core, "gc", "--kubeconfig", kubeconfig, "--namespace", ns, "-o", "json")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// gc may take far longer than the suite's budget: stop it at the cap
	// and project the whole run from the objects it deleted by then.
	capTimer := time.AfterFunc(s.opts.gcCap, func() {
		if cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
	})
	r, runErr := measureProcess(cmd, &stderr, false)
	capped := !capTimer.Stop()
	if runErr != nil && !capped {
		return runErr
	}
	rssMB := float64(r.maxRSS) / 1024
	key := "gc_10k"
	if n != 10000 {
		key = "gc_" + strconv.Itoa(n)
	}
	var figures [][]string
	if capped {
		vmis, secrets, err := countLeft(ctx, kc, vc, ns)
		if err != nil {
			return err
		}
		deleted := (n - vmis) + (n - secrets)
		if deleted == 0 {
			return fmt.Errorf("gc deleted nothing in %s (cap -gc-cap): %s", s.opts.gcCap, tail(stderr.String(), 1000))
		}
		projected := r.elapsed.Seconds() * float64(n) / float64(deleted)
		s.report.Set(key+"_seconds", projected)
		s.report.Set(key+"_completed", 0)
		figures = [][]string{
			{"stopped at the cap", bench.F(r.elapsed.Seconds()) + " s"},
			{"deleted by then", fmt.Sprintf("%d VMIs, %d Secrets (%s objects/s)", n-vmis, n-secrets, bench.F(float64(deleted)/r.elapsed.Seconds()))},
			{"projected wall time for all " + strconv.Itoa(n) + " deletions", bench.F(projected) + " s"},
			{"peak RSS up to the cap", bench.F(rssMB) + " MB"},
		}
		logf("gc: capped at %s after deleting %d of %d objects; projected %.0f s", s.opts.gcCap, deleted, n, projected)
	} else {
		var rep gcReport
		if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
			return fmt.Errorf("gc -o json output: %w\n%s", err, tail(stdout.String(), 1000))
		}
		deleted := map[string]int{}
		var delErrs []error
		for _, it := range rep.Items {
			deleted[it.Kind]++
			if it.Error != "" && len(delErrs) < 3 {
				delErrs = append(delErrs, errors.New(it.Error))
			}
		}
		if rep.ScannedVMIs != n || deleted["VirtualMachineInstance"] != n/2 || deleted["Secret"] != n/2 {
			return fmt.Errorf("gc scanned %d VMIs and deleted %v, want %d scanned and %d of each deleted: %w", rep.ScannedVMIs, deleted, n, n/2, errors.Join(delErrs...))
		}
		s.report.Set(key+"_seconds", r.elapsed.Seconds())
		s.report.Set(key+"_completed", 1)
		figures = [][]string{
			{"wall time", bench.F(r.elapsed.Seconds()) + " s"},
			{"scanned", fmt.Sprintf("%d VMIs, %d Secrets", rep.ScannedVMIs, rep.ScannedSecrets)},
			{"deleted", fmt.Sprintf("%d VMIs, %d Secrets", deleted["VirtualMachineInstance"], deleted["Secret"])},
			{"peak RSS", bench.F(rssMB) + " MB"},
		}
	}
	s.report.Set(key+"_peak_rss_mb", rssMB)
	s.report.Add(fmt.Sprintf("gc at scale: %d VMIs + %d Secrets (7)", n, n), fmt.Sprintf(
		"%d VMIs and %d Secrets (copies of a real prepared job's objects with their own names and labels, each Secret owned by its VMI), "+
			"half of them with an `expires` label an hour in the past, created in a fresh namespace with the admin client "+
			"(%d workers, %s, not part of the figure). Then `gitlab-runner-kubevirt gc -o json` runs as a process with the runner's "+
			"ServiceAccount and RBAC. Peak RSS is wait4's ru_maxrss. n = 1 (a second round would need another %d creates). "+
			"When gc has not finished after -gc-cap (%s) it is killed, the objects left are counted, and the wall time is projected "+
			"linearly from the deletion rate (`%s_completed` = 0 says so).\n\n",
		n, n, s.opts.gcWorkers, create.Round(time.Second), 2*n, s.opts.gcCap, key)+
		bench.Table([]string{"figure", "value"}, figures)+
		fmt.Sprintf("\nWhere the time goes: gc lists in pages of 500, then deletes one object per request, one after another, through a client "+
			"limited to the core's default 20 requests/s with a burst of 40 (core/kube DefaultQPS, DefaultBurst). %d VMI + %d Secret "+
			"deletions therefore need about (%d - 40) / 20 = %s s whatever the API server's speed; a rate near 20 objects/s above "+
			"means the client-side limiter, not the API server, is the bottleneck.\n", n/2, n/2, n, bench.F(float64(n-40)/20)))
	return nil
}

// countLeft counts the VMIs and Secrets left in ns.
func countLeft(ctx context.Context, kc kubernetes.Interface, vc kubevirt.Interface, ns string) (vmis, secrets int, err error) {
	sel := metav1.ListOptions{LabelSelector: naming.LabelID}
	vl, err := vc.KubevirtV1().VirtualMachineInstances(ns).List(ctx, sel)
	if err != nil {
		return 0, 0, fmt.Errorf("count vmis left in %s: %w", ns, err)
	}
	sl, err := kc.CoreV1().Secrets(ns).List(ctx, sel)
	if err != nil {
		return 0, 0, fmt.Errorf("count secrets left in %s: %w", ns, err)
	}
	return len(vl.Items), len(sl.Items), nil
}

// createPair creates one VMI and its Secret, copies of the templates.
func createPair(ctx context.Context, kc kubernetes.Interface, vc kubevirt.Interface, ns string,
	tmplVMI *kubevirtv1.VirtualMachineInstance, tmplSecret *corev1.Secret, jobID int64, expires time.Time) error {
	name := e2e.VMIName(1, jobID)
	labels := func(src map[string]string) map[string]string {
		out := make(map[string]string, len(src))
		for k, v := range src {
			out[k] = v
		}
		out[naming.LabelID] = name
		out[naming.LabelInstance] = name
		out[naming.LabelJobID] = strconv.FormatInt(jobID, 10)
		out[naming.LabelExpires] = strconv.FormatInt(expires.Unix(), 10)
		return out
	}
	vmi := &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels(tmplVMI.Labels), Annotations: tmplVMI.Annotations},
		Spec:       *tmplVMI.Spec.DeepCopy(),
	}
	created, err := vc.KubevirtV1().VirtualMachineInstances(ns).Create(ctx, vmi, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create vmi %s/%s: %w", ns, name, err)
	}
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: naming.SecretName(name), Namespace: ns, Labels: labels(tmplSecret.Labels), Annotations: tmplSecret.Annotations,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "kubevirt.io/v1", Kind: "VirtualMachineInstance", Name: name, UID: created.UID,
			}},
		},
		Type: tmplSecret.Type,
		Data: tmplSecret.Data,
	}
	if _, err := kc.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create secret %s/%s: %w", ns, sec.Name, err)
	}
	return nil
}
