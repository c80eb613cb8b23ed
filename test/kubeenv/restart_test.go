package kubeenv_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// TestAPIServerStopStart stops and kills the API server of a private
// environment and brings it back: data in etcd survives and clients reconnect.
func TestAPIServerStopStart(t *testing.T) {
	t.Parallel()
	e := kubeenv.StartForTest(t, kubeenv.Options{})
	ctx := t.Context()
	cs, err := kubernetes.NewForConfig(e.AdminConfig())
	if err != nil {
		t.Fatal(err)
	}
	ns, err := e.NewNamespace(ctx, "restart-")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "survivor"},
		Data:       map[string]string{"k": "v"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	outages := []struct {
		name string
		stop func() error
	}{
		{"graceful", func() error { return e.StopAPIServer(ctx) }},
		{"kill", e.KillAPIServer},
	}
	for _, o := range outages {
		start := time.Now()
		if err := o.stop(); err != nil {
			t.Fatalf("%s: %v", o.name, err)
		}
		if e.APIServerRunning() {
			t.Fatalf("%s: API server still running", o.name)
		}
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cs.CoreV1().ConfigMaps(ns).Get(short, "survivor", metav1.GetOptions{})
		cancel()
		if err == nil {
			t.Fatalf("%s: request succeeded while the API server was down", o.name)
		}
		stopped := time.Now()
		if err := e.StartAPIServer(ctx); err != nil {
			t.Fatalf("%s: restart: %v", o.name, err)
		}
		t.Logf("%s: stop took %v, restart until ready %v", o.name, stopped.Sub(start).Round(time.Millisecond), time.Since(stopped).Round(time.Millisecond))
		cm, err := cs.CoreV1().ConfigMaps(ns).Get(ctx, "survivor", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: after restart: %v", o.name, err)
		}
		if cm.Data["k"] != "v" {
			t.Errorf("%s: data after restart %v", o.name, cm.Data)
		}
	}
}
