package main

// `permatrix store backup` from a real server on a port, writes going on.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/test/harness"
)

// ack is a write the server acknowledged.
type ack struct {
	id  string
	rev uint64
}

// writer makes assignments on p until stop is closed, each for a subject
// of its own, and records what the server acknowledged (in order).
type writer struct {
	mu   sync.Mutex
	acks []ack
	err  error
}

func (w *writer) run(p *harness.Process, name string, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		req, _ := http.NewRequest("POST", p.URL+"/v1/assignments", strings.NewReader(grantBody(fmt.Sprintf("user:%s-%d", name, i), tm, "admin", `{"type":"service"}`)))
		req.Header.Set("Authorization", "Bearer "+p.Token)
		resp, err := http.DefaultClient.Do(req)
		var out struct {
			ID       string `json:"id"`
			Revision uint64 `json:"revision"`
		}
		if err == nil {
			if resp.StatusCode != 201 {
				err = fmt.Errorf("POST /v1/assignments: %d", resp.StatusCode)
			} else {
				err = json.NewDecoder(resp.Body).Decode(&out)
			}
			resp.Body.Close()
		}
		w.mu.Lock()
		if err != nil {
			w.err = err
			w.mu.Unlock()
			return
		}
		w.acks = append(w.acks, ack{out.ID, out.Revision})
		w.mu.Unlock()
	}
}

// await returns once n writes are acknowledged, or a write failed.
func (w *writer) await(n int) {
	for {
		w.mu.Lock()
		done := len(w.acks) >= n || w.err != nil
		w.mu.Unlock()
		if done {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

func (w *writer) snapshot() []ack {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]ack(nil), w.acks...)
}

// TestStoreBackupOfARunningServer: a backup taken while writers keep
// writing is a sound store at the revision it announces, holding every
// write acknowledged before the backup began and exactly the writes at or
// before its revision; restored with store copy --force as
// docs/security.md says, the server serves them.
func TestStoreBackupOfARunningServer(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "permatrix.db")
	p := serveOn(t, "--db", db)
	var lines strings.Builder
	for i := range 5000 {
		lines.WriteString(grantBody(fmt.Sprintf("user:bulk%04d", i), tm, "admin", `{"type":"service"}`) + "\n")
	}
	want(t, p, 200, "POST", "/v1/import?chunk=1000", lines.String())

	head, err := http.NewRequest("HEAD", p.URL+"/v1/backup", nil)
	if err != nil {
		t.Fatal(err)
	}
	head.Header.Set("Authorization", "Bearer "+copyToken)
	resp, err := http.DefaultClient.Do(head)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Permatrix-Revision") != "5" || resp.Header.Get("X-Permatrix-Store-Format") != "3" || resp.ContentLength <= 0 {
		t.Fatalf("HEAD /v1/backup: %d %v", resp.StatusCode, resp.Header)
	}

	w := &writer{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go w.run(p, fmt.Sprintf("w%d", i), stop, &wg)
	}
	// Writes are acknowledged before the backup starts, and go on during it.
	w.await(20)
	before := w.snapshot()
	backup := filepath.Join(dir, "backup.db")
	stdout, stderr, code := run(t, "store", "backup", "--server", p.URL, "--admin-token", copyToken, backup)
	after := len(w.snapshot())
	w.await(after + 20)
	close(stop)
	wg.Wait()
	if w.err != nil {
		t.Fatal(w.err)
	}
	if code != 0 {
		t.Fatalf("store backup: exit %d\n%s%s\n%s", code, stdout, stderr, p.Logs())
	}
	m := regexp.MustCompile(`revision (\d+), (\d+) assignments`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("store backup said %q", stdout)
	}
	rev, _ := strconv.ParseUint(m[1], 10, 64)
	r, err := bolt.Check(backup)
	if err != nil {
		t.Fatalf("the backup is not sound: %v", err)
	}
	if r.Revision != rev {
		t.Fatalf("the backup is at revision %d, the command said %d", r.Revision, rev)
	}
	if _, err := os.Stat(backup + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("%s.tmp left behind: %v", backup, err)
	}
	acks := w.snapshot()
	held := 0
	for _, a := range acks {
		if a.rev <= rev {
			held++
		}
	}
	t.Logf("backup at revision %d: %d writes acknowledged before it began, %d in it, %d in all", rev, len(before), held, len(acks))
	if r.Assignments != 5000+held {
		t.Fatalf("the backup holds %d assignments; %d imported and %d written at revision %d or before", r.Assignments, 5000, held, rev)
	}
	for _, a := range before {
		if a.rev > rev {
			t.Fatalf("a write acknowledged before the backup began (revision %d) is after its revision %d", a.rev, rev)
		}
	}
	if acks[len(acks)-1].rev <= rev {
		t.Fatalf("no write after the backup's revision %d: the test proves nothing", rev)
	}

	// A backup is not written over without --force.
	if _, stderr, code := run(t, "store", "backup", "--server", p.URL, "--admin-token", copyToken, backup); code != 2 || !strings.Contains(stderr, "--force") {
		t.Fatalf("backup over an existing file: exit %d %s", code, stderr)
	}

	// Nor over the file the server has open, with --force.
	if _, stderr, code := run(t, "store", "backup", "--server", p.URL, "--admin-token", copyToken, "--force", db); code != 2 || !strings.Contains(stderr, "locked") {
		t.Fatalf("backup over the server's own file: exit %d %s", code, stderr)
	}
	if _, err := bolt.Open(db, bolt.Options{ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("the server's file is not held by the server any more: %v", err)
	}

	// Restore (docs/security.md): serve stopped, store copy --force.
	p.Stop(t)
	if out, stderr, code := run(t, "store", "copy", "--from", "bolt:"+backup, "--to", "bolt:"+db, "--force"); code != 0 {
		t.Fatalf("restore: exit %d\n%s%s", code, out, stderr)
	}
	p = serveOn(t, "--db", db)
	for _, a := range acks {
		status, _ := p.Do(t, "GET", "/v1/assignments/"+a.id, "")
		if in := a.rev <= rev; (status == 200) != in {
			t.Fatalf("assignment %s written at revision %d: %d after restoring the backup at revision %d", a.id, a.rev, status, rev)
		}
	}
}

// TestStoreBackupRefusesADamagedCopy: a download cut short, or whole but
// damaged on the way, is not kept; the file named is left as it was.
func TestStoreBackupRefusesADamagedCopy(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "permatrix.db")
	p := serveOn(t, "--db", db)
	for i := range 200 {
		want(t, p, 201, "POST", "/v1/assignments", grantBody(fmt.Sprintf("user:u%03d", i), tm, "admin", `{"type":"service"}`))
	}
	good := filepath.Join(dir, "good.db")
	if out, stderr, code := run(t, "store", "backup", "--server", p.URL, "--admin-token", copyToken, good); code != 0 {
		t.Fatalf("store backup: exit %d\n%s%s", code, out, stderr)
	}
	raw, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	// What a server (or a proxy on the way) sends: the real copy's headers
	// and its bytes, cut short or with a page overwritten.
	serveBytes := func(body []byte, length int, rev string) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(length))
			w.Header().Set("X-Permatrix-Revision", rev)
			w.Header().Set("X-Permatrix-Store-Format", "3")
			w.Write(body)
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	damaged := append([]byte(nil), raw...)
	// The root page of the kv bucket's tree is somewhere past the meta
	// pages: zero every page but the metas and the first one.
	for i := 3 * 4096; i < len(damaged); i++ {
		damaged[i] = 0
	}
	cases := []struct {
		name, url string
		exit      int
		says      string
	}{
		{"cut short", serveBytes(raw[:len(raw)/2], len(raw), "200"), 2, "backup failed"},
		{"damaged", serveBytes(damaged, len(damaged), "200"), 3, "damaged and was not kept"},
		// A sound store, but not at the revision announced.
		{"another revision", serveBytes(raw, len(raw), "199"), 3, "announced revision 199"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			target := filepath.Join(dir, c.name+".db")
			if err := os.WriteFile(target, []byte("old backup"), 0o600); err != nil {
				t.Fatal(err)
			}
			_, stderr, code := run(t, "store", "backup", "--server", c.url, "--admin-token", "x", "--force", target)
			if code != c.exit || !strings.Contains(stderr, c.says) {
				t.Fatalf("exit %d (want %d), stderr %q (want %q)", code, c.exit, stderr, c.says)
			}
			if got, _ := os.ReadFile(target); string(got) != "old backup" {
				t.Fatalf("%s was changed", target)
			}
			if _, err := os.Stat(target + ".tmp"); !os.IsNotExist(err) {
				t.Fatalf("%s.tmp left behind: %v", target, err)
			}
		})
	}
}

// TestStoreBackupOfAnEtcdSidecar: a sidecar on etcd has no file to back
// up (409, exit 2, saying what to do), and what it says works while the
// sidecar runs and writes: store copy from etcd makes a sound store at one
// revision holding every write acknowledged before it began.
func TestStoreBackupOfAnEtcdSidecar(t *testing.T) {
	dir := t.TempDir()
	cluster := harness.StartEtcdCluster(t, 1)
	etcdURL := cluster.StoreURL("fleet")
	p := serveOn(t, "--store", etcdURL, "--replica", filepath.Join(dir, "replica.db"))
	for i := range 50 {
		want(t, p, 201, "POST", "/v1/assignments", grantBody(fmt.Sprintf("user:e%03d", i), tm, "admin", `{"type":"service"}`))
	}
	_, stderr, code := run(t, "store", "backup", "--server", p.URL, "--admin-token", copyToken, filepath.Join(dir, "backup.db"))
	if code != 2 || !strings.Contains(stderr, "409 conflict") || !strings.Contains(stderr, "store copy --from etcd://") {
		t.Fatalf("store backup of an etcd sidecar: exit %d %s", code, stderr)
	}

	w := &writer{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		go w.run(p, fmt.Sprintf("w%d", i), stop, &wg)
	}
	w.await(5)
	before := w.snapshot()
	backup := filepath.Join(dir, "fleet-backup.db")
	out, stderr, code := run(t, "store", "copy", "--from", etcdURL, "--to", "bolt:"+backup)
	after := len(w.snapshot())
	w.await(after + 5)
	close(stop)
	wg.Wait()
	if w.err != nil {
		t.Fatal(w.err)
	}
	if code != 0 {
		t.Fatalf("store copy from etcd while the sidecar writes: exit %d\n%s%s", code, out, stderr)
	}
	r, err := bolt.Check(backup)
	if err != nil {
		t.Fatalf("the copy is not sound: %v", err)
	}
	if r.Assignments < 50+len(before) {
		t.Fatalf("the copy holds %d assignments; %d were acknowledged before it began", r.Assignments, 50+len(before))
	}
	db, err := bolt.Open(backup, bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	snap, err := db.View()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	for _, a := range before {
		if _, err := store.Assignment(snap, a.id); err != nil {
			t.Fatalf("assignment %s, acknowledged before the copy began, is not in it: %v", a.id, err)
		}
	}
	t.Logf("copy of %d assignments; %d written before it, %d in all", r.Assignments, 50+len(before), 50+len(w.snapshot()))
}

// TestStoreBackupTokenReadAsServeReadsIt: the backup reads its token as
// serve does (one owner, givenAdminToken): a token an Authorization header
// cannot carry is refused before any request, and none at all is an error.
func TestStoreBackupTokenReadAsServeReadsIt(t *testing.T) {
	target := filepath.Join(t.TempDir(), "backup.db")
	_, stderr, code := run(t, "store", "backup", "--server", "http://127.0.0.1:1", "--admin-token", "line one\nline two", target)
	if code != 2 || !strings.Contains(stderr, "control character") {
		t.Errorf("a token of two lines: exit %d, %s", code, stderr)
	}
	_, stderr, code = run(t, "store", "backup", "--server", "http://127.0.0.1:1", target)
	if code != 2 || !strings.Contains(stderr, "give the server's admin token") {
		t.Errorf("no token: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Errorf("a refused backup left %s: %v", target, err)
	}
}
