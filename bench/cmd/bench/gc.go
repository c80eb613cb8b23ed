package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kubevirtv1 "kubevirt.io/api/core/v1"
	"kubevirt.io/client-go/kubevirt"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/bench"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
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
// measures its wall time, peak RSS, API requests (audit log) and the CPU
// time of gc, kube-apiserver, etcd and the whole machine meanwhile (where
// the time goes).
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
	vmiJSON, _ := json.Marshal(tmplVMI)
	secretJSON, _ := json.Marshal(tmplSecret)
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

	dryWall, dryCPU, err := s.gcDryRun(ctx, kubeconfig, ns, n)
	if err != nil {
		return err
	}
	gcUser := "system:serviceaccount:" + ns + ":" + e2e.ServiceAccount
	requests0, err := bench.CountRequests(s.auditLog, gcUser)
	if err != nil {
		return err
	}
	cpu0, err := controlPlaneCPU(ctx)
	if err != nil {
		return err
	}
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
	cpu1, err := controlPlaneCPU(ctx)
	if err != nil {
		return err
	}
	cpu := cpu1.sub(cpu0)
	cpu.core = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	requests1, err := bench.CountRequests(s.auditLog, gcUser)
	if err != nil {
		return err
	}
	requests := requests1.Sub(requests0)
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
	s.report.Set(key+"_requests", float64(requests.Total))
	s.report.Set(key+"_objects_per_second", float64(requests.ByKey["delete virtualmachineinstances"]+requests.ByKey["delete secrets"])/r.elapsed.Seconds())
	for name, d := range map[string]time.Duration{"core": cpu.core, "apiserver": cpu.apiserver, "etcd": cpu.etcd, "machine": cpu.machine} {
		s.report.Set(key+"_cpu_"+name+"_seconds", d.Seconds())
	}
	s.report.Set(key+"_dry_run_seconds", dryWall.Seconds())
	s.report.Set(key+"_dry_run_cpu_apiserver_seconds", dryCPU.apiserver.Seconds())
	figures = append(figures, []string{"before it, `gc --dry-run` (the same lists and decisions, no deletion)",
		fmt.Sprintf("%s s wall, kube-apiserver CPU %s s, gc CPU %s s", bench.F(dryWall.Seconds()), bench.F(dryCPU.apiserver.Seconds()), bench.F(dryCPU.core.Seconds()))})
	s.report.Set(key+"_floor_seconds", (cpu.core+cpu.apiserver+cpu.etcd).Seconds()/float64(runtime.NumCPU()))
	figures = append(figures,
		[]string{"API requests (audit log)", fmt.Sprintf("%d (%s)", requests.Total, strings.Join(keyCounts(requests), ", "))},
		[]string{"deletions per second", bench.F(float64(requests.ByKey["delete virtualmachineinstances"]+requests.ByKey["delete secrets"]) / r.elapsed.Seconds())},
		[]string{"CPU: gc process", bench.F(cpu.core.Seconds()) + " s"},
		[]string{"CPU: kube-apiserver", bench.F(cpu.apiserver.Seconds()) + " s"},
		[]string{"CPU: etcd", bench.F(cpu.etcd.Seconds()) + " s"},
		[]string{"CPU: whole machine (all processes, " + strconv.Itoa(runtime.NumCPU()) + " cores)", fmt.Sprintf("%s s of %s s available",
			bench.F(cpu.machine.Seconds()), bench.F(r.elapsed.Seconds()*float64(runtime.NumCPU())))},
	)
	s.report.Add(fmt.Sprintf("gc at scale: %d VMIs + %d Secrets (7)", n, n), fmt.Sprintf(
		"%d VMIs and %d Secrets (copies of a real prepared job's objects with their own names and labels, each Secret owned by its VMI), "+
			"half of them with an `expires` label an hour in the past, created in a fresh namespace with the admin client "+
			"(%d workers, %s, not part of the figure; a VMI is %d bytes of JSON, a Secret %d). Then `gitlab-runner-kubevirt gc -o json` runs as a process with the runner's "+
			"ServiceAccount and RBAC. Peak RSS is wait4's ru_maxrss. n = 1 (a second round would need another %d creates). "+
			"When gc has not finished after -gc-cap (%s) it is killed, the objects left are counted, and the wall time is projected "+
			"linearly from the deletion rate (`%s_completed` = 0 says so).\n\n",
		n, n, s.opts.gcWorkers, create.Round(time.Second), len(vmiJSON), len(secretJSON), 2*n, s.opts.gcCap, key)+
		bench.Table([]string{"figure", "value"}, figures)+
		fmt.Sprintf("\nWhere the time goes: gc lists our Secrets and VMIs as metadata only (pages of %d), then %d workers delete each expired "+
			"VMI and its Secret, one request per object, through a client limited to %d requests/s (burst %d), which is above what this "+
			"API server sustains: the rate above is the API server's. The CPU rows show who used the machine meanwhile: kube-apiserver "+
			"spent %s ms of CPU per deletion, etcd %s ms, the gc process %s ms; the whole-machine row (every process of every engineer "+
			"on these %d cores) shows how much CPU was left. Even with the cores to themselves, gc, kube-apiserver and etcd would need "+
			"their CPU time above divided by %d = **%s s**: the floor for this API server on this machine, whatever gc does. "+
			"A DeleteCollection with a label selector was measured no cheaper per object on this API server (docs/troubleshooting.md, "+
			"\"Why not DeleteCollection\"). For scale: the admin client created the same objects at %s objects/s with %d workers.\n",
			kube.DefaultGCPageSize, kube.DefaultGCWorkers, kube.DefaultGCQPS, kube.DefaultGCBurst,
			bench.F(perDeletion(cpu.apiserver, requests)), bench.F(perDeletion(cpu.etcd, requests)), bench.F(perDeletion(cpu.core, requests)),
			runtime.NumCPU(), runtime.NumCPU(), bench.F((cpu.core+cpu.apiserver+cpu.etcd).Seconds()/float64(runtime.NumCPU())),
			bench.F(float64(2*n)/create.Seconds()), s.opts.gcWorkers))
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

// gcDryRun runs `gc --dry-run` over the n objects of ns and checks it
// would delete exactly the expired half; it returns the wall time and the
// CPU used meanwhile.
func (s *suite) gcDryRun(ctx context.Context, kubeconfig, ns string, n int) (time.Duration, cpuUse, error) {
	cpu0, err := controlPlaneCPU(ctx)
	if err != nil {
		return 0, cpuUse{}, err
	}
	cmd := exec.CommandContext(ctx, s.bed.Core, "gc", "--dry-run", "--kubeconfig", kubeconfig, "--namespace", ns, "-o", "json")
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r, err := measureProcess(cmd, &stderr, false)
	if err != nil {
		return 0, cpuUse{}, err
	}
	cpu1, err := controlPlaneCPU(ctx)
	if err != nil {
		return 0, cpuUse{}, err
	}
	cpu := cpu1.sub(cpu0)
	cpu.core = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	var rep gcReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return 0, cpu, fmt.Errorf("gc --dry-run -o json output: %w\n%s", err, tail(stdout.String(), 1000))
	}
	if rep.ScannedVMIs != n || rep.ScannedSecrets != n || len(rep.Items) != n {
		return 0, cpu, fmt.Errorf("gc --dry-run scanned %d VMIs and %d Secrets and would delete %d objects, want %d, %d and %d",
			rep.ScannedVMIs, rep.ScannedSecrets, len(rep.Items), n, n, n)
	}
	logf("gc: dry run over %d objects in %s", 2*n, r.elapsed.Round(time.Millisecond))
	return r.elapsed, cpu, nil
}

// perDeletion is d in milliseconds per successful DELETE in c.
func perDeletion(d time.Duration, c bench.AuditCount) float64 {
	n := c.ByKey["delete virtualmachineinstances"] + c.ByKey["delete secrets"]
	if n == 0 {
		return 0
	}
	return float64(d) / float64(time.Millisecond) / float64(n)
}

// cpuUse is CPU time used over an interval.
type cpuUse struct {
	core, apiserver, etcd time.Duration
	// machine is the busy time of all CPUs (every process, not only ours).
	machine time.Duration
}

func (c cpuUse) sub(before cpuUse) cpuUse {
	return cpuUse{
		core: c.core - before.core, apiserver: c.apiserver - before.apiserver,
		etcd: c.etcd - before.etcd, machine: c.machine - before.machine,
	}
}

// controlPlaneCPU reads the CPU time used so far by this process's
// kube-apiserver and etcd children (test/kubeenv starts them) and by the
// whole machine.
func controlPlaneCPU(ctx context.Context) (cpuUse, error) {
	var u cpuUse
	w, err := bench.WatchTree(ctx, os.Getpid(), time.Hour) // one sample now
	if err != nil {
		return u, err
	}
	for _, p := range w.Stop() {
		switch p.Exe {
		case "kube-apiserver":
			u.apiserver += p.CPU
		case "etcd":
			u.etcd += p.CPU
		}
	}
	if u.apiserver == 0 || u.etcd == 0 {
		return u, fmt.Errorf("gc bench: found no kube-apiserver or etcd below pid %d", os.Getpid())
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return u, fmt.Errorf("read machine CPU time: %w", err)
	}
	// "cpu  user nice system idle iowait irq softirq steal ..." in USER_HZ.
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return u, fmt.Errorf("read machine CPU time: unexpected /proc/stat line %q", line)
	}
	var busy int64
	for i, v := range f[1:9] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return u, fmt.Errorf("read machine CPU time: field %d of %q: %w", i+1, line, err)
		}
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	u.machine = time.Duration(busy) * time.Second / 100 // USER_HZ
	return u, nil
}
