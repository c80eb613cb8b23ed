package e2e_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/e2e/e2etest"
	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/runner"
)

// secretValue is something that must not leak, under a name that is safe
// to print.
type secretValue struct {
	what  string
	value string
	// inCoreEnv marks values gitlab-runner itself hands the executor in
	// its environment (CUSTOM_ENV_CI_JOB_TOKEN): allowed there, nowhere
	// else.
	inCoreEnv bool
}

// variants returns the forms a leaked value may take: as is, its
// distinctive middle (PEM bodies survive re-wrapping and JSON escaping),
// and base64-encoded as Secret data is.
func (s secretValue) variants() []string {
	out := []string{s.value}
	if strings.Contains(s.value, "PRIVATE KEY-----") {
		body := ""
		for _, line := range strings.Split(s.value, "\n") {
			if !strings.HasPrefix(line, "-----") {
				body += strings.TrimSpace(line)
			}
		}
		if len(body) > 80 {
			out = append(out, body[20:60], body[len(body)-60:len(body)-20])
		}
	}
	if enc := base64.StdEncoding.EncodeToString([]byte(s.value)); len(enc) > 48 {
		out = append(out, enc[4:44])
	} else {
		out = append(out, enc)
	}
	return out
}

// text is a place that was read, under a printable name.
type text struct {
	where string
	data  string
	// coreEnv marks the environment of the core process.
	coreEnv bool
}

// leakJob collects, while one job runs, the secrets it uses and the
// places they must not appear in.
type leakJob struct {
	id      int64
	watcher *procWatcher

	mu      sync.Mutex
	secrets []secretValue
	texts   []text
	errs    []error
}

func (l *leakJob) hooks(cancelOn string, cancel context.CancelFunc) runner.Hooks {
	h := l.watcher.hooks()
	started := h.StageStarted
	h.StageStarted = func(s runner.StageInfo) {
		started(s)
		if s.Stage != runner.StageStepScript {
			return
		}
		l.readObjects()
		if cancelOn != "" {
			go func() {
				for deadline := time.Now().Add(waitLimit); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if len(e2etest.PidsWithCmdline(cancelOn)) > 0 {
						break
					}
				}
				cancel()
			}()
		}
	}
	return h
}

// readObjects reads the job's Secret (for the secrets) and its VMI (a
// place they must not be) while the job runs.
func (l *leakJob) readObjects() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := e2e.VMIName(runnerID, l.id)
	l.mu.Lock()
	defer l.mu.Unlock()
	secret, err := bed.Kube.CoreV1().Secrets(bed.Namespace).Get(ctx, name+"-credentials", metav1.GetOptions{})
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("read the job's Secret: %w", err))
		return
	}
	if v := secret.Data["ssh-privatekey"]; len(v) > 0 {
		l.secrets = append(l.secrets, secretValue{what: fmt.Sprintf("job %d's SSH client private key", l.id), value: string(v)})
	} else {
		l.errs = append(l.errs, fmt.Errorf("the job's Secret has no ssh-privatekey"))
	}
	if v := secret.Data["password"]; len(v) > 0 {
		l.secrets = append(l.secrets, secretValue{what: fmt.Sprintf("job %d's password", l.id), value: string(v)})
	}
	var ud struct {
		SSHKeys map[string]string `json:"ssh_keys"`
	}
	if err := yaml.Unmarshal(secret.Data["userdata"], &ud); err != nil || ud.SSHKeys["ed25519_private"] == "" {
		l.errs = append(l.errs, fmt.Errorf("the job's user-data has no ssh_keys.ed25519_private (%v)", err))
	} else {
		l.secrets = append(l.secrets, secretValue{what: fmt.Sprintf("job %d's SSH host private key", l.id), value: ud.SSHKeys["ed25519_private"]})
	}
	vmi, err := bed.Virt.KubevirtV1().VirtualMachineInstances(bed.Namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		l.errs = append(l.errs, fmt.Errorf("read the job's VMI: %w", err))
		return
	}
	data, _ := json.Marshal(vmi)
	l.texts = append(l.texts, text{where: "VMI " + name + " (spec, labels, annotations, status)", data: string(data)})
}

// TestNoSecretLeaks runs a successful, a failing and a cancelled job and
// searches every place a secret could leak to: the VMIs, the namespace's
// Events and ConfigMaps, the command lines and environments of the core
// and plugin processes while stages ran, the job log and the runner log.
// No SSH private key (client or host), password, API token or job token
// may appear there.
func TestNoSecretLeaks(t *testing.T) {
	sleep := fmt.Sprintf("sleep %d.%03d", 5000+time.Now().Unix()%1000, time.Now().Nanosecond()%1000)
	cases := []struct {
		name     string
		id       int64
		script   []string
		cancelOn string
		status   runner.Status
	}{
		{"success", 401, []string{"echo fine", "sleep 0.3"}, "", runner.StatusSuccess},
		{"failure", 402, []string{"sleep 0.3", "exit 5"}, "", runner.StatusBuildFailure},
		{"cancel", 403, []string{"echo going-to-sleep", sleep}, sleep, runner.StatusCanceled},
	}
	var (
		secrets []secretValue
		texts   []text
	)
	pluginsSeen := map[string]bool{}
	for _, c := range cases {
		l := &leakJob{id: c.id, watcher: newProcWatcher()}
		ctx, cancel := context.WithCancel(t.Context())
		token := fmt.Sprintf("glcbt-leakcheck-%d-%d", c.id, time.Now().UnixNano())
		res := runJob(ctx, t, newExecutor(t, l.hooks(c.cancelOn, cancel)), runner.Job{ID: c.id, Script: c.script, Token: token})
		cancel()
		if res.Status != c.status {
			t.Errorf("job %s: status %s (%s), want %s", c.name, res.Status, res.Reason, c.status)
		}
		for _, err := range l.errs {
			t.Errorf("job %s: %v", c.name, err)
		}
		secrets = append(secrets, l.secrets...)
		secrets = append(secrets, secretValue{what: fmt.Sprintf("job %d's CI_JOB_TOKEN", c.id), value: token, inCoreEnv: true})
		texts = append(texts, l.texts...)
		texts = append(texts, text{where: "job log of " + c.name, data: res.JobLog()}, text{where: "runner log of " + c.name, data: res.RunnerLog})
		for _, p := range l.watcher.snapshots() {
			isCore := p.exe == bed.Core
			isPlugin := filepath.Dir(p.exe) == bed.PluginDir
			if !isCore && !isPlugin {
				continue
			}
			who := fmt.Sprintf("pid %d (%s) of job %s", p.pid, filepath.Base(p.exe), c.name)
			texts = append(texts, text{where: "command line of " + who, data: p.cmdline}, text{where: "environment of " + who, data: p.environ, coreEnv: isCore})
			if isPlugin {
				pluginsSeen[strings.TrimPrefix(filepath.Base(p.exe), e2e.PluginPrefix)] = true
				// A plugin gets a minimal environment: nothing of the job's
				// or the cluster's.
				for _, banned := range []string{"CUSTOM_ENV_", "KUBECONFIG", "BUILD_EXIT_CODE_FILE", "JOB_RESPONSE_FILE"} {
					if strings.Contains(p.environ, banned) {
						t.Errorf("the environment of %s contains %s", who, banned)
					}
				}
			}
		}
		assertClean(t)
	}
	// The scan must have seen the plugins while they ran, or it proves
	// nothing.
	for _, p := range e2e.RequiredPlugins {
		if !pluginsSeen[p] {
			t.Errorf("no %s process was observed while the jobs ran; the process scan is blind", p)
		}
	}

	// Cluster-wide credentials.
	secrets = append(secrets, secretValue{what: "the admin bearer token", value: bed.Env.AdminConfig().BearerToken})
	kc, err := clientcmd.LoadFromFile(bed.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	for name, auth := range kc.AuthInfos {
		if auth.Token == "" {
			t.Fatalf("kubeconfig user %s has no token", name)
		}
		secrets = append(secrets, secretValue{what: "the runner ServiceAccount's token", value: auth.Token})
	}

	// Objects that outlive the jobs.
	events, err := bed.Kube.CoreV1().Events(bed.Namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(events)
	texts = append(texts, text{where: fmt.Sprintf("the namespace's %d Events", len(events.Items)), data: string(data)})
	cms, err := bed.Kube.CoreV1().ConfigMaps(bed.Namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ = json.Marshal(cms)
	texts = append(texts, text{where: fmt.Sprintf("the namespace's %d ConfigMaps", len(cms.Items)), data: string(data)})

	if len(secrets) < len(cases)*3+2 { // per job: client key, host key, job token
		t.Fatalf("collected only %d secrets to look for; the scan would prove little", len(secrets))
	}
	t.Logf("searched %d places for %d secrets", len(texts), len(secrets))
	for _, tx := range texts {
		for _, s := range secrets {
			if s.inCoreEnv && tx.coreEnv {
				continue
			}
			for _, v := range s.variants() {
				if v != "" && strings.Contains(tx.data, v) {
					t.Errorf("%s contains %s", tx.where, s.what)
					break
				}
			}
		}
		for _, marker := range []string{"PRIVATE KEY-----", "BEGIN OPENSSH"} {
			if strings.Contains(tx.data, marker) {
				t.Errorf("%s contains a private key marker %q", tx.where, marker)
			}
		}
	}
}
