package kubeenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// serviceAccountTokenTTL is how long ServiceAccountConfig tokens live: long
// enough for a demo session.
const serviceAccountTokenTTL = 24 * time.Hour

// Clientset returns a typed Kubernetes clientset for the admin identity.
func (e *Env) Clientset() (*kubernetes.Clientset, error) {
	cs, err := kubernetes.NewForConfig(e.AdminConfig())
	if err != nil {
		return nil, fmt.Errorf("admin clientset: %w", err)
	}
	return cs, nil
}

// NewNamespace creates a namespace and returns its name. A name ending in
// "-" is a prefix: the API server appends a random suffix, which keeps
// parallel tests apart. Namespaces are never finalised here (there is no
// namespace controller), so tests should not expect deletion to complete.
func (e *Env) NewNamespace(ctx context.Context, name string) (string, error) {
	cs, err := e.Clientset()
	if err != nil {
		return "", err
	}
	ns := &corev1.Namespace{}
	if strings.HasSuffix(name, "-") {
		ns.GenerateName = name
	} else {
		ns.Name = name
	}
	created, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create namespace %s: %w", name, err)
	}
	return created.Name, nil
}

// ServiceAccountConfig returns a client configuration and a kubeconfig file
// (context namespace = namespace) that authenticate as the existing
// ServiceAccount namespace/name, with a token from the TokenRequest API.
// What the identity may do is decided by RBAC alone, e.g. by the Role that
// [Env.ApplyRBAC] installs.
func (e *Env) ServiceAccountConfig(ctx context.Context, namespace, name string) (*rest.Config, string, error) {
	cs, err := e.Clientset()
	if err != nil {
		return nil, "", err
	}
	ttl := int64(serviceAccountTokenTTL / time.Second)
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{ExpirationSeconds: &ttl},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, "", fmt.Errorf("request a token for serviceaccount %s/%s: %w", namespace, name, err)
	}
	cfg := &rest.Config{
		Host:            e.host,
		BearerToken:     tr.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: e.CAData()},
		QPS:             100,
		Burst:           200,
		UserAgent:       "kubeenv/" + namespace + "/" + name,
	}
	path := filepath.Join(e.dir, "kubeconfig-"+namespace+"-"+name)
	if err := writeKubeconfig(path, cfg, namespace); err != nil {
		return nil, "", err
	}
	return cfg, path, nil
}

// writeKubeconfig writes a single-context kubeconfig for cfg's bearer token.
func writeKubeconfig(path string, cfg *rest.Config, namespace string) error {
	const name = "kubeenv"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{
		Server:                   cfg.Host,
		CertificateAuthorityData: cfg.CAData,
	}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: namespace}
	kc.CurrentContext = name
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}
