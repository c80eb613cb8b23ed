package standin_test

import (
	"os"
	"testing"

	"github.com/gitlab-runner-kubevirt/gitlab-runner-kubevirt/test/kubeenv"
)

// env is the control plane shared by the tests of this package.
var env *kubeenv.Env

func TestMain(m *testing.M) {
	os.Exit(kubeenv.RunMain(m, kubeenv.Options{}, func(e *kubeenv.Env) { env = e }))
}
