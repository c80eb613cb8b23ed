package kubeenv

import (
	"context"
	"fmt"
	"os"
	"testing"
)

// RunMain starts one Env for a test binary, passes it to use (typically to
// store it in a package variable of the test), runs the tests and stops the
// Env. It returns the exit code for os.Exit:
//
//	func TestMain(m *testing.M) {
//		os.Exit(kubeenv.RunMain(m, kubeenv.Options{}, func(e *kubeenv.Env) { env = e }))
//	}
//
// When the environment cannot start, RunMain prints why and returns 1: the
// tests fail, they are not skipped.
func RunMain(m *testing.M, opts Options, use func(*Env)) int {
	env, err := Start(context.Background(), opts)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kubeenv: cannot start the test control plane: %v\n", err)
		return 1
	}
	use(env)
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "kubeenv: stop: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// StartForTest starts a private Env for one test and stops it when the test
// ends. It fails the test (never skips) when the environment cannot start.
// Use it when a test disturbs the control plane, e.g. stops the API server.
func StartForTest(t testing.TB, opts Options) *Env {
	t.Helper()
	env, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("kubeenv: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("kubeenv: stop: %v", err)
		}
	})
	return env
}
