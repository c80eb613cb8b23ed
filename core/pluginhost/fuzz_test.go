package pluginhost

import (
	"reflect"
	"testing"
)

// FuzzParseLock checks that ParseLock never panics, that whatever it accepts
// is valid, and that the canonical form of an accepted lock parses back to
// the same lock. The seed corpus is in testdata/fuzz/FuzzParseLock.
func FuzzParseLock(f *testing.F) {
	f.Add([]byte(validLock))
	f.Add([]byte(`{"apiVersion":1,"plugins":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := ParseLock(data)
		if err != nil {
			if l != nil {
				t.Fatalf("ParseLock returned a lock and an error: %v", err)
			}
			return
		}
		if err := l.Validate(); err != nil {
			t.Fatalf("ParseLock accepted an invalid lock: %v\ninput: %q", err, data)
		}
		out, err := l.Marshal()
		if err != nil {
			t.Fatalf("Marshal of an accepted lock: %v", err)
		}
		again, err := ParseLock(out)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, out)
		}
		if len(again.Plugins) != len(l.Plugins) {
			t.Fatalf("round trip changed the number of plugins: %d -> %d", len(l.Plugins), len(again.Plugins))
		}
		for _, e := range l.Plugins {
			got, ok := again.Entry(e.File)
			if e.Capabilities == nil {
				e.Capabilities = []string{}
			}
			if !ok || !reflect.DeepEqual(got, e) {
				t.Fatalf("round trip changed %s:\n%+v\n%+v", e.File, e, got)
			}
		}
	})
}
