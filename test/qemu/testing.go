//go:build linux

package qemu

import "testing"

// BootForTest boots a guest for t (see Boot) and stops it in t.Cleanup;
// when the test failed, the cleanup logs the console's last 80 lines. A
// boot error fails the test: it never skips (a missing QEMU is an
// installation problem the error names).
func BootForTest(t testing.TB, opts Options) *VM {
	t.Helper()
	vm, err := Boot(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, why := vm.Accel()
	t.Logf("qemu: guest up, sshd on %s; %s", vm.SSHAddr(), why)
	t.Cleanup(func() {
		if err := vm.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("guest console, last 80 lines:\n%s", vm.ConsoleTail(80))
		}
	})
	return vm
}
