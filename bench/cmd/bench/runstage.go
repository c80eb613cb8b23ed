package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/bench"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/kube"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/naming"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/pluginhost"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/core/session"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/pluginapi"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
)

// trivialScript is a step_script of the shape gitlab-runner writes, cut to
// one command.
const trivialScript = "#!/usr/bin/env bash\nset -eo pipefail\necho 'hello from the benchmark'\n"

// runResult is one measured process.
type runResult struct {
	elapsed time.Duration
	peaks   []bench.ProcPeak
	maxRSS  int64 // KiB, wait4's ru_maxrss (the process and its reaped children)
}

// runOurs runs `gitlab-runner-kubevirt run <script> step_script` as
// gitlab-runner would, its stdout to stdout. With watch, the process tree's
// peak RSS is sampled (not for timed runs: sampling costs CPU).
func runOurs(ctx context.Context, h *heldJob, script string, stdout *os.File, watch bool) (runResult, error) {
	args := append(slices.Clone(h.runArgs), script, "step_script")
	cmd := exec.CommandContext(ctx, h.core, args...)
	cmd.Env, cmd.Dir = h.env, h.dir
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return measureProcess(cmd, &stderr, watch)
}

// runSSH runs OpenSSH's client with a fresh connection (or the control
// master in extra) doing what run does: upload the script on stdin, run it.
func runSSH(ctx context.Context, h *heldJob, extra []string, remote string, stdin, stdout *os.File) (runResult, error) {
	args := append(slices.Clone(extra), h.sshArgs...)
	args = append(args, remote)
	cmd := exec.CommandContext(ctx, "ssh", args...)
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, &stderr
	return measureProcess(cmd, &stderr, false)
}

func measureProcess(cmd *exec.Cmd, stderr *bytes.Buffer, watch bool) (runResult, error) {
	var r runResult
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return r, fmt.Errorf("start %s: %w", filepath.Base(cmd.Path), err)
	}
	var w *bench.TreeWatch
	if watch {
		var err error
		if w, err = bench.WatchTree(context.Background(), cmd.Process.Pid, 2*time.Millisecond); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return r, err
		}
	}
	err := cmd.Wait()
	r.elapsed = time.Since(t0)
	if w != nil {
		r.peaks = w.Stop()
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss
	}
	if err != nil {
		return r, fmt.Errorf("%s %s: %w\n%s", filepath.Base(cmd.Path), strings.Join(cmd.Args[1:2], " "), err, tail(stderr.String(), 2000))
	}
	return r, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchRunAndStream measures the run stage against OpenSSH (fresh
// connection and control-master reuse), output throughput, and the
// memory of the core and its plugins during run.
func (s *suite) benchRunAndStream(ctx context.Context) error {
	h, err := s.holdJob(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := s.release(context.WithoutCancel(ctx), h); err != nil {
			logf("%v", err)
		}
	}()
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer devnull.Close()
	script := filepath.Join(h.dir, "trivial.sh")
	if err := os.WriteFile(script, []byte(trivialScript), 0o700); err != nil {
		return fmt.Errorf("write script: %w", err)
	}
	remote := fmt.Sprintf("cat > /tmp/bench-%d.sh && bash /tmp/bench-%d.sh", h.id, h.id)
	openScript := func() (*os.File, error) { return os.Open(script) }
	sshOnce := func(extra []string) bench.Measure {
		return func(ctx context.Context) (float64, error) {
			in, err := openScript()
			if err != nil {
				return 0, err
			}
			defer in.Close()
			r, err := runSSH(ctx, h, extra, remote, in, devnull)
			return ms(r.elapsed), err
		}
	}
	ours := func(ctx context.Context) (float64, error) {
		r, err := runOurs(ctx, h, script, devnull, false)
		return ms(r.elapsed), err
	}
	// Warm both sides once (page cache of binaries, sshd's first fork).
	if _, err := ours(ctx); err != nil {
		return err
	}
	if _, err := sshOnce(nil)(ctx); err != nil {
		return err
	}
	var body strings.Builder
	if s.opts.want("run") {
		oursMS, sshMS, err := bench.Alternate(ctx, s.opts.runN, ours, sshOnce(nil))
		if err != nil {
			return err
		}
		o, _ := bench.Summarize(oursMS)
		b, _ := bench.Summarize(sshMS)
		s.report.Set("run_stage_ms", o.Median)
		s.report.Set("run_stage_openssh_ms", b.Median)
		s.report.Set("run_overhead_ratio_vs_openssh", o.Median/b.Median)

		// OpenSSH with connection reuse (ControlMaster) vs a fresh
		// connection, alternately.
		cm := filepath.Join(h.dir, "cm")
		master := exec.CommandContext(ctx, "ssh", append([]string{"-M", "-N", "-f", "-o", "ControlPath=" + cm, "-o", "ControlPersist=300"}, h.sshArgs...)...)
		if out, err := master.CombinedOutput(); err != nil {
			return fmt.Errorf("start the OpenSSH control master: %w\n%s", err, out)
		}
		defer exec.Command("ssh", append([]string{"-O", "exit", "-o", "ControlPath=" + cm}, h.sshArgs...)...).Run()
		reuse := []string{"-o", "ControlPath=" + cm, "-o", "ControlMaster=no"}
		oursR, reuseMS, err := bench.Alternate(ctx, s.opts.runN, ours, sshOnce(reuse))
		if err != nil {
			return err
		}
		or, _ := bench.Summarize(oursR)
		rr, _ := bench.Summarize(reuseMS)
		s.report.Set("run_stage_openssh_reuse_ms", rr.Median)

		// Where the time goes: the same binary doing nothing, and a
		// plugin start (measured in the plugin benchmark).
		version := func(ctx context.Context) (float64, error) {
			cmd := exec.CommandContext(ctx, h.core, "version")
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = devnull, &stderr
			r, err := measureProcess(cmd, &stderr, false)
			return ms(r.elapsed), err
		}
		var verMS []float64
		for range s.opts.runN {
			x, err := version(ctx)
			if err != nil {
				return err
			}
			verMS = append(verMS, x)
		}
		v, _ := bench.Summarize(verMS)
		s.report.Set("core_process_start_ms", v.Median)
		before, err := bench.CountRequests(s.auditLog, s.saUser)
		if err != nil {
			return err
		}
		if _, err := ours(ctx); err != nil {
			return err
		}
		time.Sleep(300 * time.Millisecond)
		after, err := bench.CountRequests(s.auditLog, s.saUser)
		if err != nil {
			return err
		}
		perRun := after.Sub(before)
		s.report.Set("api_requests_per_run_stage", float64(perRun.Total))
		s.runProfile = s.profileRun(ctx, h, script, s.opts.profileRunStages)

		fmt.Fprintf(&body, "`gitlab-runner-kubevirt run <script> step_script` as a separate process with step_script's environment from the harness, "+
			"against a job prepared on the real API server and the stand-in's sshd, vs OpenSSH's `ssh` uploading and running the same script "+
			"(`ssh -i <job key> -o UserKnownHostsFile=<pinned host key> ... 'cat > /tmp/x.sh && bash /tmp/x.sh' < script`), same key, same sshd. "+
			"Script: %q.\n\n", trivialScript)
		body.WriteString(bench.Table([]string{"side", "median ms", "p95 ms", "n"}, [][]string{
			{"ours (`run`, fresh process + plugin + connection)", bench.F(o.Median), bench.F(o.P95), fmt.Sprint(o.N)},
			{"OpenSSH, fresh connection", bench.F(b.Median), bench.F(b.P95), fmt.Sprint(b.N)},
			{"ours (second alternation, vs reuse)", bench.F(or.Median), bench.F(or.P95), fmt.Sprint(or.N)},
			{"OpenSSH, ControlMaster reuse", bench.F(rr.Median), bench.F(rr.P95), fmt.Sprint(rr.N)},
		}))
		fmt.Fprintf(&body, "\n`run_overhead_ratio_vs_openssh` = %s / %s = **%s** (target <= 1.5).\n\n", bench.F(o.Median), bench.F(b.Median), bench.F(o.Median/b.Median))
		fmt.Fprintf(&body, "Without a session (the figures of this section up to the session table below), every run stage is a new `gitlab-runner-kubevirt` process that starts "+
			"the transport plugin and dials a new SSH connection (the plugin's connection pool lives only as long as the plugin process, "+
			"so upload and exec share one connection, but stages do not). OpenSSH with a "+
			"ControlMaster takes %s ms (ours without a session / that = %s); the session figures are in the table at the end of this section.\n\n", bench.F(rr.Median), bench.F(or.Median/rr.Median))
		body.WriteString("Breakdown of a run stage (medians):\n\n")
		body.WriteString(bench.Table([]string{"part", "ms"}, [][]string{
			{"`gitlab-runner-kubevirt version` (process start, cobra, no work)", bench.F(v.Median)},
			{"transport-ssh plugin start (launch + handshake + mTLS + GetInfo), see below", s.metricString("plugin_start_ms_transport-ssh")},
			{fmt.Sprintf("API requests per run stage (audit log): %d (%s)", perRun.Total, strings.Join(keyCounts(perRun), ", ")), ""},
			{"whole run stage", bench.F(o.Median)},
		}))
		if s.runProfile != "" {
			body.WriteString("\nCPU profile of the run stage's core side, in-process (`stages.Run` with the real plugin host, " +
				fmt.Sprint(s.opts.profileRunStages) + " runs; `go tool pprof -top`, first lines):\n\n```\n" + s.runProfile + "```\n")
		}
	}

	if s.opts.want("stream") {
		if err := s.benchStream(ctx, h, devnull, &body); err != nil {
			return err
		}
	}

	// Memory during run: separate, untimed runs with the /proc sampler.
	if err := s.benchRunMemory(ctx, h, script, devnull, &body); err != nil {
		return err
	}
	// Last, so that every figure above is of the fresh-connection path.
	if s.opts.want("run") {
		reuse := []string{"-o", "ControlPath=" + filepath.Join(h.dir, "cm"), "-o", "ControlMaster=no"}

		// With the per-job transport session: the run stage reattaches to
		// the plugin prepare kept, whose pool holds the SSH connection.
		// The session is made here the way prepare makes it (the held
		// job's harness TMPDIR is gone), in the held job's TMPDIR.
		if err := s.keepSession(ctx, h); err != nil {
			return fmt.Errorf("keep a transport session for the held job: %w", err)
		}
		if _, err := ours(ctx); err != nil { // warm: first reattach
			return err
		}
		sessFresh, sshFresh2, err := bench.Alternate(ctx, s.opts.runN, ours, sshOnce(nil))
		if err != nil {
			return err
		}
		sessCM, cm2, err := bench.Alternate(ctx, s.opts.runN, ours, sshOnce(reuse))
		if err != nil {
			return err
		}
		sf, _ := bench.Summarize(sessFresh)
		f2, _ := bench.Summarize(sshFresh2)
		sc, _ := bench.Summarize(sessCM)
		c2, _ := bench.Summarize(cm2)
		s.report.Set("run_stage_session_ms", sf.Median)
		s.report.Set("run_overhead_ratio_vs_openssh_reuse", sf.Median/f2.Median)
		s.report.Set("run_overhead_ratio_vs_openssh_controlmaster", sc.Median/c2.Median)
		sessionRows := [][]string{
			{"ours with the session (alternated with OpenSSH fresh)", bench.F(sf.Median), bench.F(sf.P95), fmt.Sprint(sf.N)},
			{"OpenSSH, fresh connection", bench.F(f2.Median), bench.F(f2.P95), fmt.Sprint(f2.N)},
			{"ours with the session (alternated with ControlMaster)", bench.F(sc.Median), bench.F(sc.P95), fmt.Sprint(sc.N)},
			{"OpenSSH, ControlMaster reuse", bench.F(c2.Median), bench.F(c2.P95), fmt.Sprint(c2.N)},
		}
		{
			fmt.Fprintf(&body, "\nWith the per-job transport session (connection reuse, see docs/sessions.md): the run stage reattaches to the "+
				"transport plugin kept running since prepare, whose pool holds the SSH connection (the session is created for the held job "+
				"the way prepare creates it).\n\n%s\n`run_overhead_ratio_vs_openssh_reuse` = %s / %s = **%s** (target <= 1.0); "+
				"`run_overhead_ratio_vs_openssh_controlmaster` = %s / %s = **%s**.\n",
				bench.Table([]string{"side", "median ms", "p95 ms", "n"}, sessionRows),
				bench.F(sf.Median), bench.F(f2.Median), bench.F(sf.Median/f2.Median),
				bench.F(sc.Median), bench.F(c2.Median), bench.F(sc.Median/c2.Median))
		}
	}
	s.report.Add("Run stage vs OpenSSH (1), output throughput (3), memory (8)", body.String())
	return nil
}

func (s *suite) metricString(name string) string {
	if v, ok := s.report.Metrics[name]; ok && v != nil {
		return bench.F(*v)
	}
	return "not measured"
}

func keyCounts(c bench.AuditCount) []string {
	var out []string
	for _, k := range c.Keys() {
		out = append(out, fmt.Sprintf("%s x%d", k, c.ByKey[k]))
	}
	return out
}

// benchStream compares output throughput.
func (s *suite) benchStream(ctx context.Context, h *heldJob, devnull *os.File, body *strings.Builder) error {
	size := int64(s.opts.streamMiB) << 20
	script := filepath.Join(h.dir, "stream.sh")
	if err := os.WriteFile(script, []byte(fmt.Sprintf("#!/usr/bin/env bash\nhead -c %d /dev/zero\n", size)), 0o700); err != nil {
		return fmt.Errorf("write stream script: %w", err)
	}
	mib := float64(s.opts.streamMiB)
	ours := func(ctx context.Context) (float64, error) {
		r, err := runOurs(ctx, h, script, devnull, false)
		return mib / r.elapsed.Seconds(), err
	}
	theirs := func(ctx context.Context) (float64, error) {
		in, err := os.Open(os.DevNull)
		if err != nil {
			return 0, err
		}
		defer in.Close()
		r, err := runSSH(ctx, h, nil, fmt.Sprintf("head -c %d /dev/zero", size), in, devnull)
		return mib / r.elapsed.Seconds(), err
	}
	o, b, err := bench.Alternate(ctx, s.opts.streamN, ours, theirs)
	if err != nil {
		return err
	}
	oursS, _ := bench.Summarize(o)
	bs, _ := bench.Summarize(b)
	s.report.Set("stream_throughput_mib_s", oursS.Median)
	s.report.Set("stream_throughput_openssh_mib_s", bs.Median)
	s.report.Set("stream_throughput_ratio_vs_openssh", oursS.Median/bs.Median)
	fmt.Fprintf(body, "\n### Output throughput (3)\n\n%d MiB of stdout (`head -c %d /dev/zero`): remote command -> transport-ssh plugin -> "+
		"our stdout (/dev/null): the core passes its stdout and stderr descriptors to the plugin, which writes the output straight into them "+
		"(direct output, docs/plugins.md); gRPC carries only the control messages. Against `ssh host 'head -c ...' > /dev/null`. "+
		"Wall time of the whole process, so the fixed start cost is included.\n\n",
		s.opts.streamMiB, size)
	body.WriteString(bench.Table([]string{"side", "median MiB/s", "n"}, [][]string{
		{"ours", bench.F(oursS.Median), fmt.Sprint(oursS.N)},
		{"OpenSSH", bench.F(bs.Median), fmt.Sprint(bs.N)},
	}))
	fmt.Fprintf(body, "\n`stream_throughput_ratio_vs_openssh` = **%s** (target >= 0.8).\n", bench.F(oursS.Median/bs.Median))
	return nil
}

// benchRunMemory samples the peak RSS of the core and every plugin of
// run stages (trivial and, when selected, streaming).
func (s *suite) benchRunMemory(ctx context.Context, h *heldJob, trivial string, devnull *os.File, body *strings.Builder) error {
	const n = 3
	scripts := []struct{ name, path string }{{"trivial", trivial}}
	if s.opts.want("stream") {
		s.streamProfile = s.profileRun(ctx, h, filepath.Join(h.dir, "stream.sh"), 1)
		scripts = append(scripts, struct{ name, path string }{"stream", filepath.Join(h.dir, "stream.sh")})
	}
	var rows [][]string
	overall := map[string]float64{}
	for _, sc := range scripts {
		byExe := map[string][]float64{}
		cpuByExe := map[string][]float64{}
		for range n {
			r, err := runOurs(ctx, h, sc.path, devnull, true)
			if err != nil {
				return err
			}
			for _, p := range r.peaks {
				name := exeName(p.Exe)
				if name == "" {
					continue
				}
				byExe[name] = append(byExe[name], float64(p.HWMKiB)/1024)
				cpuByExe[name] = append(cpuByExe[name], ms(p.CPU))
			}
		}
		for _, exe := range sortedKeys(byExe) {
			m, _ := bench.Median(byExe[exe])
			c, _ := bench.Median(cpuByExe[exe])
			rows = append(rows, []string{sc.name, exe, bench.F(m), bench.F(c), fmt.Sprint(len(byExe[exe]))})
			overall[exe] = max(overall[exe], m)
			if sc.name == "stream" {
				s.report.Set("stream_cpu_ms_"+strings.ReplaceAll(exe, "-", "_"), c)
			}
		}
	}
	for exe, v := range overall {
		if exe == "core" {
			s.report.Set("core_peak_rss_mb", v)
		} else {
			s.report.Set("plugin_"+strings.ReplaceAll(exe, "-", "_")+"_peak_rss_mb", v)
		}
	}
	fmt.Fprintf(body, "\n### Memory during run (8)\n\nPeak RSS (VmHWM from /proc, sampled every 2 ms in untimed runs) of the core and each plugin process "+
		"it starts; median of %d runs per script. The metrics take the larger of the scripts' medians.\n\n", n)
	body.WriteString(bench.Table([]string{"script", "process", "median peak RSS MB", "median CPU ms (user+sys, last sample)", "n"}, rows))
	if s.streamProfile != "" {
		body.WriteString("\nCPU profile of the core side of one streaming run stage, in-process (`stages.Run`; the plugin is another process, " +
			"its CPU time is in the table above; `go tool pprof -top`, first lines):\n\n```\n" + s.streamProfile + "```\n")
	}
	return nil
}

// exeName maps a process's executable to "core", a plugin name, or ""
// for anything else (the remote side is not our child).
func exeName(exe string) string {
	switch {
	case exe == e2e.CoreBinary:
		return "core"
	case strings.HasPrefix(exe, e2e.PluginPrefix):
		return strings.TrimPrefix(exe, e2e.PluginPrefix)
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return sortedStrings(keys)
}

// keepSession starts the transport plugin detachable, opens its pooled SSH
// connection to the held job's guest with the job's credentials (as
// prepare's WaitReady does), detaches it and saves the session in the held
// job's TMPDIR, so that later run stages reattach to it.
func (s *suite) keepSession(ctx context.Context, h *heldJob) error {
	env := map[string]string{}
	for _, kv := range h.env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	secret, err := s.bed.Kube.CoreV1().Secrets(s.bed.Namespace).Get(ctx, naming.SecretName(h.vmi), metav1.GetOptions{})
	if err != nil {
		return err
	}
	access, err := kube.ParseAccess(secret)
	if err != nil {
		return err
	}
	vmi, err := s.bed.Virt.KubevirtV1().VirtualMachineInstances(s.bed.Namespace).Get(ctx, h.vmi, metav1.GetOptions{})
	if err != nil {
		return err
	}
	m, err := session.New(lookup, h.vmi, time.Hour, session.Options{Enabled: true}, nil)
	if err != nil {
		return err
	}
	if err := m.Store().MakeDir(); err != nil {
		return err
	}
	dir := filepath.Join(filepath.Dir(h.core), "plugins")
	lock, err := pluginhost.ReadLock(dir)
	if err != nil {
		return err
	}
	e, err := lock.ByName(nil, pluginhost.KindTransport, access.Transport)
	if err != nil {
		return err
	}
	sum, err := hex.DecodeString(e.SHA256)
	if err != nil {
		return err
	}
	p, err := pluginapi.Launch(ctx, pluginapi.LaunchOptions{
		Path: filepath.Join(dir, e.File), SHA256: sum, Detachable: true, SocketDir: m.Store().Dir(),
		Env: []string{"PATH=" + os.Getenv("PATH")},
	})
	if err != nil {
		return err
	}
	defer p.Close()
	t, err := p.Transport()
	if err != nil {
		return err
	}
	if _, err := t.WaitReady(ctx, access.Target(h.ip)); err != nil {
		return err
	}
	return m.Keep(ctx, p, access.Transport, string(vmi.UID))
}
