package fleet_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/test/harness"
)

// TestKeyPermatrixDoesNotWrite: a value that is not a grant, put with the
// etcd client under a grant key of the fleet's prefix — a writer other than
// permatrix handing user:mallory the admin role — turns the sidecar not
// ready, and every check 503 (never allow, for anyone), naming the key in
// /health/ready, its log and /metrics, never the value; once the key is
// deleted the sidecar serves again without a restart.
func TestKeyPermatrixDoesNotWrite(t *testing.T) {
	f := startFleetOn(t, harness.StartEtcdCluster(t, 1), 1)
	p := f.sidecar(0)
	if code, raw := call(p, "POST", "/v1/assignments", grant("ann", "celonis-task-mining", "admin"), nil); code != 201 {
		t.Fatalf("%d %s", code, raw)
	}
	check := func(user string) (int, []byte) {
		return call(p, "POST", "/v1/check", `{"subject":"`+user+`","system":"celonis-task-mining","action":"edit_users"}`, nil)
	}
	if code, raw := check("ann"); code != 200 || !bytes.Contains(raw, []byte(`"allow":true`)) {
		t.Fatalf("before the damage: %d %s", code, raw)
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(f.cluster.Endpoints(), ","), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx := context.Background()
	key := "/" + f.prefix + "/k/" + string(store.Key("d", "grants", "user:mallory", "celonis-task-mining", "role", "admin", "service"))
	const value = `{"via":"user:mallory","secret":"hunter2"`
	if _, err := cli.Put(ctx, key, value); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second) // a guard only
	for {
		code, raw := call(p, "GET", "/health/ready", "", nil)
		if code == 503 && bytes.Contains(raw, []byte(`user:mallory`)) {
			if bytes.Contains(raw, []byte("hunter2")) {
				t.Errorf("/health/ready shows the key's value: %s", raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar stays ready on a damaged key: %d %s", code, raw)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, user := range []string{"ann", "mallory"} {
		if code, raw := check(user); code != 503 || bytes.Contains(raw, []byte(`"allow":true`)) || !bytes.Contains(raw, []byte("user:mallory")) {
			t.Errorf("check of %s on a damaged replica: %d %s, want 503 naming the key", user, code, raw)
		}
	}
	if code, raw := call(p, "GET", "/metrics", "", nil); code != 200 || !bytes.Contains(raw, []byte("permatrix_store_damaged_keys 1")) ||
		!bytes.Contains(raw, []byte(`permatrix_store_damaged_key{key="/`+f.prefix+`/k/d\\x00grants\\x00user:mallory`)) {
		t.Errorf("/metrics does not name the damaged key: %d\n%s", code, grepLines(raw, "damaged"))
	}
	if logs := p.Logs(); !strings.Contains(logs, "etcd holds a key permatrix does not write") || strings.Contains(logs, "hunter2") {
		t.Errorf("the log does not say so, or shows the value:\n%s", logs)
	}

	if _, err := cli.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	f.waitReady(0)
	if code, raw := check("ann"); code != 200 || !bytes.Contains(raw, []byte(`"allow":true`)) {
		t.Errorf("ann once the key is deleted: %d %s", code, raw)
	}
	if code, raw := check("mallory"); code != 200 || !bytes.Contains(raw, []byte(`"allow":false`)) {
		t.Errorf("mallory once the key is deleted: %d %s", code, raw)
	}
	if _, raw := call(p, "GET", "/metrics", "", nil); !bytes.Contains(raw, []byte("permatrix_store_damaged_keys 0")) {
		t.Errorf("/metrics once the key is deleted:\n%s", grepLines(raw, "damaged"))
	}
}

// grepLines is the lines of raw that hold s.
func grepLines(raw []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(raw), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
