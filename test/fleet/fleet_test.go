// Package fleet_test runs permatrix as a fleet: a real three-member etcd
// cluster (built from the Go module proxy, test/tools/etcd) on loopback
// ports, and three `permatrix serve` sidecars from the binary on it, each
// with its own local replica.
package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/test/harness"
)

var bin string

func TestMain(m *testing.M) { harness.MainWithBinary(m, &bin) }

const token = "fleet-token"

// fleet is the cluster and its sidecars.
type fleet struct {
	t        *testing.T
	cluster  *harness.EtcdCluster
	prefix   string
	dir      string
	args     []string // more serve flags for every sidecar
	mu       sync.Mutex
	sidecars []*harness.Process
}

// startFleet starts a three-member etcd cluster and n sidecars on it, with
// extra serve flags.
func startFleet(t *testing.T, n int, extra ...string) *fleet {
	return startFleetOn(t, harness.StartEtcdCluster(t, 3), n, extra...)
}

// startFleetOn starts n sidecars on cluster, with extra serve flags.
func startFleetOn(t *testing.T, cluster *harness.EtcdCluster, n int, extra ...string) *fleet {
	f := &fleet{t: t, cluster: cluster, prefix: fmt.Sprintf("fleet%d", time.Now().UnixNano()), dir: t.TempDir(), args: extra}
	for i := range n {
		f.sidecars = append(f.sidecars, f.start(i))
	}
	for i := range n {
		f.waitReady(i)
	}
	return f
}

// start runs sidecar i on its replica file.
func (f *fleet) start(i int) *harness.Process {
	f.t.Helper()
	args := []string{"--addr", "127.0.0.1:0", "--admin-token", token,
		"--store", f.cluster.StoreURL(f.prefix), "--replica", filepath.Join(f.dir, fmt.Sprintf("replica%d.db", i))}
	p, err := harness.StartProcess(f.t, bin, token, nil, append(args, f.args...)...)
	if err != nil {
		f.t.Fatalf("sidecar %d: %v\n%s", i, err, p.Logs())
	}
	return p
}

func (f *fleet) sidecar(i int) *harness.Process {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.sidecars[i]
}

// restart kills sidecar i with SIGKILL and starts it again on its replica.
func (f *fleet) restart(i int) {
	f.mu.Lock()
	old := f.sidecars[i]
	f.mu.Unlock()
	_ = old.Cmd.Process.Kill()
	<-old.Done()
	p := f.start(i)
	f.mu.Lock()
	f.sidecars[i] = p
	f.mu.Unlock()
}

// waitReady waits for sidecar i's /health/ready.
func (f *fleet) waitReady(i int) {
	f.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, _ := call(f.sidecar(i), "GET", "/health/ready", "", nil)
		if code == 200 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("sidecar %d not ready: %s", i, f.sidecar(i).Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 15 * time.Second}

// call sends a request with the admin token; status 0 means no answer.
func call(p *harness.Process, method, path, body string, headers map[string]string) (int, []byte) {
	req, err := http.NewRequest(method, p.URL+path, strings.NewReader(body))
	if err != nil {
		return 0, nil
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, raw
}

func grant(user, system, role string) string {
	return fmt.Sprintf(`{"subject":"user:%s","system":%q,"role":%q,"scope":{"type":"service"}}`, user, system, role)
}

type written struct {
	ID       string `json:"id"`
	Revision uint64 `json:"revision"`
}

// A write through sidecar A is decided at sidecar C once C is given A's
// revision as a consistency token; a token C cannot reach in time is 503
// naming both revisions.
func TestWriteAtAReadAtC(t *testing.T) {
	f := startFleet(t, 3)
	a, c := f.sidecar(0), f.sidecar(2)
	for i := range 5 {
		user := fmt.Sprintf("reader%d", i)
		code, raw := call(a, "POST", "/v1/assignments", grant(user, "uipath-task-mining-suite", "admin"), nil)
		if code != 201 {
			t.Fatalf("write at A: %d %s", code, raw)
		}
		var w written
		json.Unmarshal(raw, &w)
		check := fmt.Sprintf(`{"subject":%q,"system":"uipath-task-mining-suite","action":"manage_users","min_revision":%d}`, user, w.Revision)
		code, raw = call(c, "POST", "/v1/check", check, nil)
		var d struct {
			Allow    bool   `json:"allow"`
			Revision uint64 `json:"revision"`
		}
		json.Unmarshal(raw, &d)
		if code != 200 || !d.Allow || d.Revision < w.Revision {
			t.Fatalf("check at C with min_revision %d: %d %s", w.Revision, code, raw)
		}
		// The same token in a header, for forward-auth-style callers.
		code, raw = call(c, "POST", "/v1/check", fmt.Sprintf(`{"subject":%q,"system":"uipath-task-mining-suite","action":"manage_users"}`, user),
			map[string]string{"X-Permatrix-Min-Revision": strconv.FormatUint(w.Revision, 10)})
		if code != 200 || !bytes.Contains(raw, []byte(`"allow":true`)) {
			t.Fatalf("check at C with the header: %d %s", code, raw)
		}
	}
	code, raw := call(c, "POST", "/v1/check", `{"subject":"x","system":"uipath-task-mining-suite","action":"manage_users","min_revision":999999999}`, nil)
	if code != 503 || !bytes.Contains(raw, []byte("999999999")) {
		t.Fatalf("an unreachable token: %d %s", code, raw)
	}
}

// The concurrent-delegation race: alice and bob, both Task Mining Admins,
// each remove the other's role through different sidecars at the same
// time. One after the other the rules refuse the second (its actor is no
// longer an admin), so the fleet must never commit both.
func TestConcurrentDelegationRace(t *testing.T) {
	f := startFleet(t, 3)
	const suite = "uipath-task-mining-suite"
	for round := range 12 {
		// each removal through its own sidecar
		if both, raws := mutualRevocation(t, round, suite, f.sidecar(0), func(i int) *harness.Process { return f.sidecar(1 + i) }); both {
			t.Fatalf("round %d: both delegated removals committed: %s / %s", round, raws[0], raws[1])
		}
	}
}

// mutualRevocation is one round of the delegation race: alice<round> and
// bob<round> are made admins of suite through setup, then each removes the
// other's admin role at the same moment, removal i through via(i). Each
// removal must be 200 or 403 (else the test stops); both says whether both
// committed, raws are the two answers.
func mutualRevocation(t *testing.T, round int, suite string, setup *harness.Process, via func(i int) *harness.Process) (both bool, raws [][]byte) {
	t.Helper()
	alice, bob := fmt.Sprintf("alice%d", round), fmt.Sprintf("bob%d", round)
	ids := map[string]string{}
	for _, u := range []string{alice, bob} {
		code, raw := call(setup, "POST", "/v1/assignments", grant(u, suite, "admin"), nil)
		if code != 201 {
			t.Fatalf("setup: %d %s", code, raw)
		}
		var w written
		json.Unmarshal(raw, &w)
		ids[u] = w.ID
	}
	var wg sync.WaitGroup
	codes := make([]int, 2)
	raws = make([][]byte, 2)
	start := make(chan struct{})
	for i, pair := range [][2]string{{alice, bob}, {bob, alice}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			// actor pair[0] removes pair[1]'s admin role
			codes[i], raws[i] = call(via(i), "DELETE", "/v1/assignments/"+ids[pair[1]], fmt.Sprintf(`{"actor":%q}`, pair[0]), nil)
		}()
	}
	close(start)
	wg.Wait()
	for i, c := range codes {
		if c != 200 && c != 403 {
			t.Fatalf("round %d: removal %d: %d %s (other: %d %s)", round, i, c, raws[i], codes[1-i], raws[1-i])
		}
	}
	return codes[0] == 200 && codes[1] == 200, raws
}

// etcd stopped entirely: decisions keep answering from the replicas,
// writes get 503 and change nothing; once etcd is back, writes work again
// and every sidecar converges.
func TestEtcdDown(t *testing.T) {
	f := startFleet(t, 3)
	const tm = "celonis-task-mining"
	code, raw := call(f.sidecar(0), "POST", "/v1/assignments", grant("ann", tm, "admin"), nil)
	if code != 201 {
		t.Fatalf("%d %s", code, raw)
	}
	var w written
	json.Unmarshal(raw, &w)
	for i := range 3 {
		if code, raw := call(f.sidecar(i), "POST", "/v1/check", fmt.Sprintf(`{"subject":"ann","system":%q,"action":"edit_users","min_revision":%d}`, tm, w.Revision), nil); code != 200 {
			t.Fatalf("sidecar %d before: %d %s", i, code, raw)
		}
	}
	for _, m := range f.cluster.Members {
		m.Kill()
	}
	for i := range 3 {
		code, raw := call(f.sidecar(i), "POST", "/v1/check", fmt.Sprintf(`{"subject":"ann","system":%q,"action":"edit_users"}`, tm), nil)
		if code != 200 || !bytes.Contains(raw, []byte(`"allow":true`)) {
			t.Fatalf("sidecar %d decides with etcd down: %d %s", i, code, raw)
		}
		var h struct {
			Store struct {
				Revision    uint64 `json:"revision"`
				Replication struct {
					AppliedRevision uint64 `json:"applied_revision"`
				} `json:"replication"`
			} `json:"store"`
		}
		_, raw = call(f.sidecar(i), "GET", "/health", "", nil)
		if json.Unmarshal(raw, &h); h.Store.Replication.AppliedRevision < w.Revision {
			t.Fatalf("sidecar %d health with etcd down: %s", i, raw)
		}
	}
	code, raw = call(f.sidecar(1), "POST", "/v1/assignments", grant("bob", tm, "admin"), nil)
	if code != 503 {
		t.Fatalf("a write with etcd down: %d %s", code, raw)
	}
	for _, m := range f.cluster.Members {
		if err := f.cluster.Restart(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.cluster.WaitHealthy(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	var last written
	deadline := time.Now().Add(60 * time.Second)
	for {
		code, raw = call(f.sidecar(1), "POST", "/v1/assignments", grant("bob", tm, "admin"), nil)
		if code == 201 {
			json.Unmarshal(raw, &last)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes do not work again after etcd is back: %d %s", code, raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	f.converged(last.Revision)
}

// converged waits until every sidecar has applied rev, then holds their
// exports to each other and to etcd's own content.
func (f *fleet) converged(rev uint64) []byte {
	f.t.Helper()
	var exports [][]byte
	deadline := time.Now().Add(60 * time.Second)
	for i := range f.sidecars {
		for {
			code, raw := call(f.sidecar(i), "POST", "/v1/check",
				fmt.Sprintf(`{"subject":"nobody","system":"celonis-task-mining","action":"edit_users","min_revision":%d}`, rev), nil)
			if code == 200 {
				break
			}
			if time.Now().After(deadline) {
				f.t.Fatalf("sidecar %d never reached revision %d: %d %s", i, rev, code, raw)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// Every sidecar is at rev or later; wait for them to agree.
	for {
		exports = exports[:0]
		for i := range f.sidecars {
			code, raw := call(f.sidecar(i), "GET", "/v1/export", "", nil)
			if code != 200 {
				f.t.Fatalf("export of sidecar %d: %d %s", i, code, raw)
			}
			exports = append(exports, raw)
		}
		if bytes.Equal(exports[0], exports[1]) && bytes.Equal(exports[1], exports[2]) {
			break
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("the sidecars' exports differ:\n%s\n%s\n%s", exports[0], exports[1], exports[2])
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The same document, rebuilt from etcd's keys at that revision.
	var doc struct {
		Store struct {
			Revision uint64 `json:"revision"`
		} `json:"store"`
	}
	json.Unmarshal(exports[0], &doc)
	if got := f.fromEtcd(doc.Store.Revision); !bytes.Equal(got, exports[0]) {
		f.t.Fatalf("the sidecars' export differs from etcd's content at revision %d:\n%s\n%s", doc.Store.Revision, exports[0], got)
	}
	return exports[0]
}

// fromEtcd is the export document of the prefix's data keys in etcd at rev.
func (f *fleet) fromEtcd(rev uint64) []byte {
	f.t.Helper()
	var eps []string
	for _, m := range f.cluster.Members {
		eps = append(eps, m.ClientURL)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
	if err != nil {
		f.t.Fatal(err)
	}
	defer cli.Close()
	prefix := "/" + f.prefix + "/k/"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithRev(int64(rev)))
	if err != nil {
		f.t.Fatal(err)
	}
	mem := store.NewMemory()
	batch := &store.Batch{}
	for _, kv := range resp.Kvs {
		batch.Ops = append(batch.Ops, store.Op{Key: kv.Key[len(prefix):], Value: kv.Value})
	}
	if _, err := mem.Commit(ctx, batch); err != nil {
		f.t.Fatal(err)
	}
	snap, _ := mem.View()
	var buf bytes.Buffer
	if err := store.WriteDocument(&buf, store.AtRevision(snap, rev)); err != nil {
		f.t.Fatal(err)
	}
	return buf.Bytes()
}

// Sixteen writers spread over the three sidecars for a while, as a random
// sidecar and a random etcd member — the leader every other time — are
// killed with SIGKILL every few seconds: no acknowledged write is lost, and
// in the end the three sidecars hold exactly etcd's content.
func TestChaos(t *testing.T) {
	duration := 30 * time.Second
	if testing.Short() {
		duration = 10 * time.Second
	}
	f := startFleet(t, 3)
	stop := make(chan struct{})
	var acked sync.Map // id → user
	var nAcked, nFailed atomic.Int64
	var maxRev atomic.Uint64
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				user := fmt.Sprintf("w%d-%d", w, n)
				code, raw := call(f.sidecar(rng.IntN(3)), "POST", "/v1/assignments", grant(user, "celonis-task-mining", "analyst"), nil)
				if code != 201 {
					nFailed.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				var wr written
				if err := json.Unmarshal(raw, &wr); err != nil || wr.ID == "" {
					t.Errorf("acknowledged write without an id: %s", raw)
					return
				}
				acked.Store(wr.ID, user)
				nAcked.Add(1)
				for {
					old := maxRev.Load()
					if wr.Revision <= old || maxRev.CompareAndSwap(old, wr.Revision) {
						break
					}
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(7, 7))
	end := time.Now().Add(duration)
	for kills := 0; time.Now().Before(end); kills++ {
		time.Sleep(time.Duration(2000+rng.IntN(2000)) * time.Millisecond)
		f.restart(rng.IntN(3))
		m := f.cluster.Members[rng.IntN(3)]
		if kills%2 == 0 {
			if l := f.leader(); l != nil {
				m = l
			}
		}
		m.Kill()
		time.Sleep(time.Duration(500+rng.IntN(1000)) * time.Millisecond)
		if err := f.cluster.Restart(m); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if err := f.cluster.WaitHealthy(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		f.waitReady(i)
	}
	// One last write, so every sidecar has something to reach.
	var last written
	for deadline := time.Now().Add(60 * time.Second); ; {
		code, raw := call(f.sidecar(0), "POST", "/v1/assignments", grant("last", "celonis-task-mining", "analyst"), nil)
		if code == 201 {
			json.Unmarshal(raw, &last)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no write after the chaos: %d %s", code, raw)
		}
		time.Sleep(200 * time.Millisecond)
	}
	export := f.converged(max(last.Revision, maxRev.Load()))
	var missing []string
	acked.Range(func(id, _ any) bool {
		if !bytes.Contains(export, []byte(`"assignment":"`+id.(string)+`"`)) {
			missing = append(missing, id.(string))
		}
		return true
	})
	slices.Sort(missing)
	t.Logf("%d writes acknowledged, %d refused or unanswered during the chaos", nAcked.Load(), nFailed.Load())
	if nAcked.Load() < 100 {
		t.Fatalf("only %d writes acknowledged: the fleet hardly worked", nAcked.Load())
	}
	if len(missing) > 0 {
		t.Fatalf("%d acknowledged writes lost: %v", len(missing), missing)
	}
}

// leader is the member etcd reports as leader, if any answers.
func (f *fleet) leader() *harness.EtcdMember {
	for _, m := range f.cluster.Members {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.ClientURL}, DialTimeout: time.Second})
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		st, err := cli.Status(ctx, m.ClientURL)
		cancel()
		cli.Close()
		if err == nil && st.Leader == st.Header.MemberId {
			return m
		}
	}
	return nil
}

// --max-staleness: a sidecar on an idle, healthy cluster stays ready (no
// write for longer than the limit is not staleness); with etcd gone it
// turns not-ready once the limit has passed, keeps deciding, and says
// which revision it answers from; with etcd back it is ready again.
func TestMaxStaleness(t *testing.T) {
	f := startFleet(t, 1, "--max-staleness", "1500ms")
	s := f.sidecar(0)
	code, raw := call(s, "POST", "/v1/assignments", grant("ann", "celonis-task-mining", "admin"), nil)
	if code != 201 {
		t.Fatalf("%d %s", code, raw)
	}
	f.restart(0) // a watch that starts at the latest revision hears nothing while no one writes
	f.waitReady(0)
	s = f.sidecar(0)
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if code, raw := call(s, "GET", "/health/ready", "", nil); code != 200 {
			t.Fatalf("an idle sidecar on a healthy cluster is not ready: %d %s", code, raw)
		}
	}
	for _, m := range f.cluster.Members {
		m.Kill()
	}
	down := time.Now()
	var health struct {
		Store struct {
			Ready       bool
			Error       string
			Replication struct {
				AppliedRevision uint64    `json:"applied_revision"`
				LastContact     time.Time `json:"last_contact"`
			}
		}
	}
	for {
		code, raw := call(s, "GET", "/health/ready", "", nil)
		if code == 503 {
			if err := json.Unmarshal(raw, &health); err != nil || health.Store.Ready || !strings.Contains(health.Store.Error, "--max-staleness") ||
				health.Store.Replication.AppliedRevision == 0 || health.Store.Replication.LastContact.IsZero() {
				t.Fatalf("not ready, but: %s", raw)
			}
			break
		}
		if time.Since(down) > 10*time.Second {
			t.Fatalf("still ready %s after etcd stopped: %s", time.Since(down), raw)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The limit runs from the last contact, which precedes the kill by
	// up to a heartbeat (a third of the limit) and the machine's delays:
	// a bound from the kill (once: a second) failed on a loaded machine.
	if since := time.Since(health.Store.Replication.LastContact); since < 1500*time.Millisecond {
		t.Fatalf("not ready %s after its last contact with etcd (%s after etcd stopped), before --max-staleness 1.5s passed", since, time.Since(down))
	}
	if code, raw := call(s, "POST", "/v1/check", `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`, nil); code != 200 || !bytes.Contains(raw, []byte(`"allow":true`)) {
		t.Fatalf("a stale sidecar still decides: %d %s", code, raw)
	}
	for _, m := range f.cluster.Members {
		if err := f.cluster.Restart(m); err != nil {
			t.Fatal(err)
		}
	}
	f.waitReady(0)
}

// A damaged replica is never served: the sidecar sets it aside, says so,
// rebuilds the replica from etcd and decides as before.
func TestDamagedReplica(t *testing.T) {
	f := startFleet(t, 1)
	code, raw := call(f.sidecar(0), "POST", "/v1/assignments", grant("ann", "celonis-task-mining", "admin"), nil)
	if code != 201 {
		t.Fatalf("%d %s", code, raw)
	}
	f.sidecar(0).Stop(t)
	replica := filepath.Join(f.dir, "replica0.db")
	b, err := os.ReadFile(replica)
	if err != nil {
		t.Fatal(err)
	}
	for i := 2 * 4096; i < len(b); i += 7 {
		b[i] ^= 0x5a
	}
	if err := os.WriteFile(replica, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Served again: the damaged replica is set aside and rebuilt from etcd.
	f.sidecars[0] = f.start(0)
	f.waitReady(0)
	if code, raw := call(f.sidecar(0), "POST", "/v1/check", `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`, nil); code != 200 || !bytes.Contains(raw, []byte(`"allow":true`)) {
		t.Fatalf("after the rebuild: %d %s", code, raw)
	}
	if _, err := os.Stat(replica + ".damaged"); err != nil {
		t.Fatalf("the damaged replica was not set aside: %v", err)
	}
	if logs := f.sidecar(0).Logs(); !strings.Contains(logs, "rebuilding it from etcd") {
		t.Fatalf("no word of the rebuild:\n%s", logs)
	}
}
