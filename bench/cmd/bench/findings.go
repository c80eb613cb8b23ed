package main

import (
	"fmt"
	"strings"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/bench"
)

// metric returns a measured metric and whether it exists.
func (s *suite) metric(name string) (float64, bool) {
	v, ok := s.report.Metrics[name]
	if !ok || v == nil {
		return 0, false
	}
	return *v, true
}

// findings explains each missed target from the figures above and names
// the cheapest change the profiles point at. Recommendations only: the
// benchmark changes no core code.
func (s *suite) findings() string {
	var b strings.Builder
	item := func(format string, args ...any) { fmt.Fprintf(&b, "- "+format+"\n", args...) }
	if v, ok := s.metric("plugin_start_ms"); ok {
		item("**Plugin start (%s ms, target 50).** In the run stage's CPU profile the largest share of the core's CPU (about half) is `sha256.blockSHANI` under "+
			"`pluginhost.(*Host).Open`: the plugin binary is hashed in full twice per start, once by the plugin host and again by "+
			"go-plugin's SecureConfig, right before exec. Hashing it once (SecureConfig alone already refuses a changed binary) and "+
			"building plugins with `-ldflags '-s -w'` (smaller files to hash and map; `make build` does, test/e2e's BuildBinaries does "+
			"not) are cheap wins. The rest is process start plus the AutoMTLS certificate generation and TLS handshake (P-521 in the "+
			"profile: a P-256 or Ed25519 certificate would be cheaper, but that is go-plugin's choice).", bench.F(v))
	}
	if fresh, ok := s.metric("run_stage_openssh_ms"); ok {
		reuse, _ := s.metric("run_stage_openssh_reuse_ms")
		ours, _ := s.metric("run_stage_ms")
		item("**Run stage without reuse.** OpenSSH with a fresh connection takes %s ms against this sshd and %s ms over a "+
			"ControlMaster: almost all of a run stage is the SSH connection setup on the server side, which ours (%s ms) pays "+
			"once per stage too. Reaching `run_overhead_ratio_vs_openssh_reuse <= 1` needs a connection that outlives one "+
			"`run` process (e.g. a per-job transport helper started by prepare and reached over a Unix socket, or an SSH "+
			"control socket); that is a design change, not a tweak.", bench.F(fresh), bench.F(reuse), bench.F(ours))
	}
	if v, ok := s.metric("job_overhead_ms"); ok {
		run, _ := s.metric("job_phase_run_ms")
		prep, _ := s.metric("job_phase_prepare_ms")
		item("**Job overhead (%s ms, target 1000).** The phase table shows the 5 run sub-stages take %s ms and prepare %s ms: "+
			"the job overhead is mostly 5 x (process start + transport plugin start + SSH connection). The same connection reuse "+
			"as above, and starting only the transport plugin in run (it already does) with the cheaper plugin start, are the levers; "+
			"API requests are not (%s per job).", bench.F(v), bench.F(run), bench.F(prep), s.metricString("api_requests_per_job"))
	}
	if v, ok := s.metric("stream_throughput_ratio_vs_openssh"); ok {
		core, _ := s.metric("stream_cpu_ms_core")
		plug, _ := s.metric("stream_cpu_ms_transport_ssh")
		item("**Output throughput (ratio %s, target 0.8).** For the streaming run the core used %s ms and the transport plugin %s ms "+
			"of CPU on a 2-core machine: every byte is decrypted from SSH, re-encrypted for the plugin's mTLS gRPC stream, "+
			"decrypted again in the core, and carried in 64 KiB messages. The core's profile is led by `runtime.memclrNoHeapPointers` "+
			"under grpc's buffer pool `Get`, i.e. a fresh, zeroed receive buffer per message. Cheap wins to try: larger output "+
			"chunks (256 KiB to 1 MiB) so fewer messages cross gRPC, and reusing the read buffer in the plugin's output pump.",
			bench.F(v), bench.F(core), bench.F(plug))
	}
	if v, ok := s.metric("gc_10k_seconds"); ok {
		item("**gc at 10k (%s s, target 15).** gc deletes one object per request, sequentially, through the core's 20 QPS client: "+
			"10,000 deletions cannot take less than about 500 s. A gc-specific client rate (e.g. a `--qps` flag) and a small pool "+
			"of concurrent deleters would bring it near the API server's own speed; memory (%s MB) is within its target.",
			bench.F(v), s.metricString("gc_10k_peak_rss_mb"))
	}
	if b.Len() == 0 {
		return ""
	}
	return "What the profiles and breakdowns above show for each missed or borderline target, and the cheapest change they point at " +
		"(recommendations; the benchmark changes no core code):\n\n" + b.String()
}
