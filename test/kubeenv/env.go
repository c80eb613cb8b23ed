package kubeenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

const (
	// kubernetesServiceIP is the first address of serviceCIDR, which the
	// API server reserves for the kubernetes Service.
	kubernetesServiceIP = "10.0.0.1"
	serviceCIDR         = "10.0.0.0/24"
	// serviceAccountIssuer is the iss claim of ServiceAccount tokens.
	serviceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

	portAttempts        = 3
	defaultStartTimeout = 60 * time.Second
	stopGrace           = 10 * time.Second
	logTailLines        = 40
)

// errPortInUse marks a start that failed because a port picked as free was
// taken before the child bound it.
var errPortInUse = errors.New("port already in use")

// Options configures [Start]. The zero value is ready to use.
type Options struct {
	// BinariesDir holds etcd and kube-apiserver. Empty means
	// $KUBE_BINARIES_DIR, else [DefaultBinariesDir] (built on demand).
	BinariesDir string
	// NoBuild makes Start fail, with the command to run, instead of running
	// hack/kube-binaries.sh when the cached binaries are missing.
	NoBuild bool
	// BuildOutput receives the build script's progress (default os.Stderr).
	BuildOutput io.Writer
	// TempDir is the parent of the environment's working directory
	// (default os.TempDir()).
	TempDir string
	// KeepDir keeps the working directory (logs, certificates, etcd data,
	// kubeconfigs) after Stop, for debugging.
	KeepDir bool
	// StartTimeout bounds each wait for a component to become ready
	// (default 60s).
	StartTimeout time.Duration
	// APIServerFlags are appended to kube-apiserver's command line; a later
	// --flag=value overrides an earlier one.
	APIServerFlags []string
}

// Env is a running etcd + kube-apiserver with the KubeVirt CRDs installed.
// Its methods are safe for concurrent use.
type Env struct {
	opts Options
	bins Binaries
	dir  string
	pki  *pki
	host string // https://127.0.0.1:port

	adminKubeconfig string
	etcd            *process

	mu        sync.Mutex // guards apiserver and stopped
	apiserver *process
	stopped   bool
}

// Start builds or finds the binaries, starts etcd and kube-apiserver on
// loopback with fresh credentials, waits until the API server is ready, and
// installs the KubeVirt CRDs. ctx bounds the start only: the processes keep
// running until [Env.Stop]. On failure everything started is torn down and
// the error carries the tail of the failing component's log.
func Start(ctx context.Context, opts Options) (*Env, error) {
	if opts.StartTimeout <= 0 {
		opts.StartTimeout = defaultStartTimeout
	}
	bins, err := FindBinaries(ctx, opts)
	if err != nil {
		return nil, err
	}
	// Ports are picked free, then released for the children to bind, so
	// another process can win one in between: retry with fresh ports.
	for attempt := 1; ; attempt++ {
		e, err := startOnce(ctx, opts, bins)
		if err == nil {
			return e, nil
		}
		if !errors.Is(err, errPortInUse) || attempt == portAttempts {
			return nil, err
		}
	}
}

func startOnce(ctx context.Context, opts Options, bins Binaries) (*Env, error) {
	dir, err := os.MkdirTemp(opts.TempDir, "kubeenv-")
	if err != nil {
		return nil, fmt.Errorf("create working dir: %w", err)
	}
	e := &Env{opts: opts, bins: bins, dir: dir}
	if err := e.start(ctx); err != nil {
		if serr := e.Stop(); serr != nil {
			err = errors.Join(err, serr)
		}
		return nil, err
	}
	return e, nil
}

func (e *Env) start(ctx context.Context) error {
	p, err := writePKI(filepath.Join(e.dir, "pki"))
	if err != nil {
		return err
	}
	e.pki = p

	ports, err := freePorts(3)
	if err != nil {
		return err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(ports[0])
	peerURL := "http://127.0.0.1:" + strconv.Itoa(ports[1])
	e.host = "https://127.0.0.1:" + strconv.Itoa(ports[2])

	e.etcd = &process{
		name:    "etcd",
		path:    e.bins.Etcd,
		logPath: filepath.Join(e.dir, "etcd.log"),
		args: []string{
			"--name=kubeenv",
			"--data-dir=" + filepath.Join(e.dir, "etcd"),
			"--listen-client-urls=" + etcdURL,
			"--advertise-client-urls=" + etcdURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=kubeenv=" + peerURL,
			"--initial-cluster-state=new",
			// A test cluster trades durability for speed.
			"--unsafe-no-fsync=true",
			"--log-level=warn",
		},
	}
	if err := e.etcd.start(); err != nil {
		return err
	}
	if err := e.waitReady(ctx, e.etcd, etcdURL+"/health", nil); err != nil {
		return err
	}

	apiserverArgs := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(ports[2]),
		"--cert-dir=" + filepath.Join(e.dir, "apiserver-certs"),
		"--tls-cert-file=" + p.serveCert,
		"--tls-private-key-file=" + p.serveKey,
		"--client-ca-file=" + p.caCert,
		"--token-auth-file=" + p.tokenFile,
		"--authorization-mode=RBAC",
		"--service-account-issuer=" + serviceAccountIssuer,
		"--service-account-key-file=" + p.saPub,
		"--service-account-signing-key-file=" + p.saKey,
		"--service-cluster-ip-range=" + serviceCIDR,
		// 1.37 refuses to reconcile endpoints for a loopback advertise
		// address; nothing here needs the kubernetes Service endpoints.
		"--endpoint-reconciler-type=none",
		"--allow-privileged=true",
		"--profiling=false",
	}
	e.apiserver = &process{
		name:    "kube-apiserver",
		path:    e.bins.APIServer,
		logPath: filepath.Join(e.dir, "kube-apiserver.log"),
		args:    append(apiserverArgs, e.opts.APIServerFlags...),
	}
	if err := e.startAPIServer(ctx); err != nil {
		return err
	}

	e.adminKubeconfig = filepath.Join(e.dir, "admin.kubeconfig")
	if err := writeKubeconfig(e.adminKubeconfig, e.AdminConfig(), "default"); err != nil {
		return err
	}
	if err := installCRDs(ctx, e.AdminConfig(), e.opts.StartTimeout); err != nil {
		return err
	}
	return warmUpVMIs(ctx, e.AdminConfig(), e.opts.StartTimeout)
}

// startAPIServer starts the configured kube-apiserver and waits for /readyz.
func (e *Env) startAPIServer(ctx context.Context) error {
	if err := e.apiserver.start(); err != nil {
		return err
	}
	return e.waitReady(ctx, e.apiserver, e.host+"/readyz", e.adminTLS())
}

// waitReady polls url until it answers 200, p exits, ctx ends or the start
// timeout passes; errors carry the tail of p's log.
func (e *Env) waitReady(ctx context.Context, p *process, url string, tlsConfig *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, e.opts.StartTimeout)
	defer cancel()
	client := &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true},
	}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("wait for %s: %w", p.name, err)
		}
		if tlsConfig != nil {
			req.Header.Set("Authorization", "Bearer "+e.pki.adminToken)
		}
		resp, err := client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
		}
		last = err
		select {
		case <-p.done:
			tail := p.tail(logTailLines)
			err := p.exitError()
			if strings.Contains(tail, "address already in use") {
				err = errors.Join(errPortInUse, err)
			}
			return fmt.Errorf("%s did not become ready: %w\n--- last lines of %s ---\n%s",
				p.name, err, p.logPath, tail)
		case <-ctx.Done():
			return fmt.Errorf("%s did not become ready (%w; last probe: %v)\n--- last lines of %s ---\n%s",
				p.name, ctx.Err(), last, p.logPath, p.tail(logTailLines))
		case <-tick.C:
		}
	}
}

// freePorts reserves n distinct loopback ports by listening on them at
// once, then releases them for the child processes.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("reserve a loopback port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func (e *Env) adminTLS() *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.pki.caPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// AdminConfig returns a fresh client configuration for a cluster-admin
// identity (a static token in group system:masters).
func (e *Env) AdminConfig() *rest.Config {
	return &rest.Config{
		Host:            e.host,
		BearerToken:     e.pki.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: append([]byte(nil), e.pki.caPEM...)},
		QPS:             100,
		Burst:           200,
		UserAgent:       "kubeenv",
	}
}

// AdminKubeconfig returns the path of a kubeconfig file for the admin
// identity (context namespace "default").
func (e *Env) AdminKubeconfig() string { return e.adminKubeconfig }

// Host returns the API server URL, https://127.0.0.1:<port>.
func (e *Env) Host() string { return e.host }

// CAData returns the PEM CA certificate that signed the API server's
// serving certificate.
func (e *Env) CAData() []byte { return append([]byte(nil), e.pki.caPEM...) }

// Dir returns the environment's working directory: logs, certificates,
// etcd data and kubeconfig files. It is removed by Stop unless
// [Options.KeepDir].
func (e *Env) Dir() string { return e.dir }

// APIServerLog returns the path of kube-apiserver's log file. Restarts
// append to it.
func (e *Env) APIServerLog() string { return filepath.Join(e.dir, "kube-apiserver.log") }

// EtcdLog returns the path of etcd's log file.
func (e *Env) EtcdLog() string { return filepath.Join(e.dir, "etcd.log") }

// Binaries returns the binaries the environment runs.
func (e *Env) Binaries() Binaries { return e.bins }

// StopAPIServer stops kube-apiserver gracefully (SIGTERM to its process
// group, SIGKILL after 10s or when ctx ends) and leaves etcd running, so
// [Env.StartAPIServer] can bring the same cluster back. Clients see
// connection refused meanwhile.
func (e *Env) StopAPIServer(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.apiserver.stop(ctx, stopGrace); err != nil {
		return fmt.Errorf("stop kube-apiserver: %w", err)
	}
	return nil
}

// KillAPIServer kills kube-apiserver with SIGKILL, as a crash would, and
// leaves etcd running.
func (e *Env) KillAPIServer() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.apiserver.stop(context.Background(), 0); err != nil {
		return fmt.Errorf("kill kube-apiserver: %w", err)
	}
	return nil
}

// StartAPIServer starts kube-apiserver again after StopAPIServer or
// KillAPIServer, on the same address with the same credentials, and waits
// until it is ready. It is a no-op while the API server runs.
func (e *Env) StartAPIServer(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return errors.New("start kube-apiserver: environment is stopped")
	}
	if e.apiserver.running() {
		return nil
	}
	if err := e.startAPIServer(ctx); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	if err := warmUpVMIs(ctx, e.AdminConfig(), e.opts.StartTimeout); err != nil {
		return fmt.Errorf("restart: %w", err)
	}
	return nil
}

// APIServerRunning reports whether the kube-apiserver process is running
// (not whether it is ready).
func (e *Env) APIServerRunning() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.apiserver != nil && e.apiserver.running()
}

// Stop stops kube-apiserver, then etcd (each process group gets SIGTERM,
// then SIGKILL), and removes the working directory unless [Options.KeepDir].
// It is idempotent.
func (e *Env) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return nil
	}
	e.stopped = true
	var errs []error
	for _, p := range []*process{e.apiserver, e.etcd} {
		if p == nil {
			continue
		}
		if err := p.stop(context.Background(), stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	if !e.opts.KeepDir {
		if err := os.RemoveAll(e.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", e.dir, err))
		}
	}
	return errors.Join(errs...)
}
