package kube

import (
	"fmt"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/flowcontrol"
	"kubevirt.io/client-go/kubevirt"
)

// Client rate limits. A stage makes a handful of calls; gc lists in pages.
// These leave room for bursts without hammering a busy API server.
const (
	DefaultQPS   = 20
	DefaultBurst = 40
	userAgent    = "gitlab-runner-kubevirt"
)

// Options select the cluster, identity and namespace.
type Options struct {
	// Kubeconfig is an explicit kubeconfig path (--kubeconfig). Empty
	// means $KUBECONFIG, then ~/.kube/config, then the in-cluster
	// ServiceAccount.
	Kubeconfig string
	// Context overrides the kubeconfig's current context (--context).
	Context string
	// Namespace overrides the namespace (--namespace). Empty means the
	// context's namespace, the in-cluster namespace, or "default".
	Namespace string
	// QPS and Burst override the client-side rate limit (zero: DefaultQPS
	// and DefaultBurst). gc raises them: it makes thousands of requests.
	QPS   float32
	Burst int
}

// Clients are the typed clients of one cluster and the namespace to work in.
type Clients struct {
	// Kube is the core Kubernetes clientset (Secrets).
	Kube kubernetes.Interface
	// Virt is the typed KubeVirt clientset (VirtualMachineInstances).
	Virt kubevirt.Interface
	// Meta lists objects as metadata only (PartialObjectMetadata): gc
	// scans thousands of objects without decoding their specs or data.
	Meta metadata.Interface
	// Namespace is where the job's objects live.
	Namespace string
}

// New loads the client configuration described by opts and builds the
// clients. It makes no API call.
func New(opts Options) (*Clients, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = opts.Kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: opts.Context}
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubernetes client configuration: %w", err)
	}
	cfg.QPS, cfg.Burst = opts.QPS, opts.Burst
	ns := opts.Namespace
	if ns == "" {
		if ns, _, err = loader.Namespace(); err != nil {
			return nil, fmt.Errorf("determine namespace: %w", err)
		}
	}
	return NewForConfig(cfg, ns)
}

// NewForConfig builds the clients from a rest.Config; a zero QPS or Burst
// gets the defaults. Unless cfg brings its own RateLimiter, the clients
// share one token bucket, so QPS limits their requests together.
func NewForConfig(cfg *rest.Config, namespace string) (*Clients, error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS = DefaultQPS
	}
	if cfg.Burst == 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.RateLimiter == nil && cfg.QPS > 0 {
		cfg.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(cfg.QPS, cfg.Burst)
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = userAgent
	}
	if namespace == "" {
		namespace = "default"
	}
	kc, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client for %s: %w", cfg.Host, err)
	}
	vc, err := kubevirt.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubevirt client for %s: %w", cfg.Host, err)
	}
	mc, err := metadata.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("metadata client for %s: %w", cfg.Host, err)
	}
	return &Clients{Kube: kc, Virt: vc, Meta: mc, Namespace: namespace}, nil
}
