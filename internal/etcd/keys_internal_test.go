package etcd

import (
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var keySink string

// The mark's key is compared with every event the watch applies and put in
// every commit's transaction: it is made once, when the store is opened,
// not concatenated from the prefix on each use.
func TestCopyKeyMadeOnce(t *testing.T) {
	s := &Store{}
	s.setPrefix("/p/")
	if got := s.copyKey(); got != "/p/m/copying" {
		t.Fatalf("copyKey: %q", got)
	}
	if n := testing.AllocsPerRun(100, func() { keySink = s.copyKey() }); n != 0 {
		t.Fatalf("copyKey allocates %v times a call", n)
	}
	// Nor does telling an event of another key from the mark's (apply).
	ev := &clientv3.Event{Type: mvccpb.PUT, Kv: &mvccpb.KeyValue{Key: []byte("/p/m/nudge")}}
	if n := testing.AllocsPerRun(100, func() {
		if string(ev.Kv.Key) == s.copyKey() {
			keySink = "x"
		}
	}); n != 0 {
		t.Fatalf("telling the mark's key allocates %v times an event", n)
	}
}
