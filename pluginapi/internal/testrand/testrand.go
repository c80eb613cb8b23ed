// Package testrand gives pluginapi's tests and test plugins one source of
// reproducible pseudo-random bytes, so a test and the plugin process it
// launches agree on the bytes without sending them.
package testrand

import "math/rand/v2"

// Bytes returns n reproducible bytes for seed. They neither compress nor
// repeat with a short period, so a dropped or reordered chunk changes the
// digest of a stream built from them.
func Bytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}
