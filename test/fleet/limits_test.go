package fleet_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/test/harness"
)

// permissionLine is an import line: user:<user> may edit Celonis users (two
// key operations and their guards: eight entries of an etcd transaction
// for a new user, plus five shared by every line of a commit).
func permissionLine(user string) string {
	return fmt.Sprintf(`{"subject":"user:%s","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`, user) + "\n"
}

// projectRoleLine needs eighteen entries alone: a role at a project scope
// writes four keys (the grant, the assignment, the role's use, the
// scope's use) and fourteen guards.
const projectRoleLine = `{"subject":"user:proj","system":"uipath-task-mining-suite","role":"user","scope":{"type":"project","id":"p1"}}` + "\n"

// importResult is the answer to an import.
type importResult struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

func postImport(t *testing.T, p *harness.Process, query, body string) importResult {
	t.Helper()
	req, err := http.NewRequest("POST", p.URL+"/v1/import"+query, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw bytes.Buffer
	raw.ReadFrom(resp.Body)
	r := importResult{status: resp.StatusCode, header: resp.Header, raw: raw.Bytes()}
	if err := json.Unmarshal(r.raw, &r.body); err != nil {
		t.Fatalf("import answered %d %q", r.status, r.raw)
	}
	return r
}

func (r importResult) num(k string) int { f, _ := r.body[k].(float64); return int(f) }

// holdsGrant reports whether user's Celonis edit_users grant is stored, as
// sidecar p sees it.
func holdsGrant(t *testing.T, p *harness.Process, user string) bool {
	t.Helper()
	code, raw := call(p, "GET", "/v1/assignments?subject=user:"+user, "", nil)
	if code != 200 {
		t.Fatalf("list: %d %s", code, raw)
	}
	return !bytes.Contains(raw, []byte(`"assignments":[]`))
}

// A cluster whose --max-txn-ops is small (16), and a sidecar told so: an
// import commits as many lines as fit, a line (or a single write) that
// alone does not fit is 413 naming the limit, and a user read with many
// groups (more units than a transaction takes compares) still gets a
// grant. A sidecar told a larger limit than the cluster's answers 413
// when etcd refuses — never 503 — and writes nothing of that commit.
func TestSmallTxnLimit(t *testing.T) {
	f := startFleetOn(t, harness.StartEtcdCluster(t, 3, "--max-txn-ops", "16"), 1, "--etcd-max-txn-ops", "16")
	a := f.sidecar(0)

	// 100 lines, one chunk: commits of two lines each (15 entries).
	var body strings.Builder
	for i := range 100 {
		body.WriteString(permissionLine(fmt.Sprintf("small%d", i)))
	}
	r := postImport(t, a, "?chunk=10000", body.String())
	if r.status != 200 || r.num("imported") != 100 || r.num("last_line") != 100 || r.num("chunks") < 50 {
		t.Fatalf("100 lines at --max-txn-ops 16: %d %s", r.status, r.raw)
	}
	if !holdsGrant(t, a, "small0") || !holdsGrant(t, a, "small99") {
		t.Fatal("imported lines missing")
	}

	// A line that alone does not fit: 413 with its line number; the
	// lines before it stay.
	r = postImport(t, a, "?chunk=10000", permissionLine("before1")+permissionLine("before2")+projectRoleLine+permissionLine("after"))
	if r.status != 413 || !strings.Contains(string(r.raw), "line 3: the etcd transaction for this write would have 18 operations") ||
		!strings.Contains(string(r.raw), "--max-txn-ops of 16") || !strings.Contains(string(r.raw), "lines 1 to 2 are imported") ||
		r.header.Get("X-Permatrix-Import-Last-Line") != "2" {
		t.Fatalf("a line over the limit: %d %v %s", r.status, r.header, r.raw)
	}
	if !holdsGrant(t, a, "before2") || holdsGrant(t, a, "proj") || holdsGrant(t, a, "after") {
		t.Fatal("the import stored the wrong lines")
	}
	// The same as a single write: 413, nothing stored.
	code, raw := call(a, "POST", "/v1/assignments", strings.TrimSpace(projectRoleLine), nil)
	if code != 413 || !bytes.Contains(raw, []byte("would have 18 operations")) || holdsGrant(t, a, "proj") {
		t.Fatalf("a single write over the limit: %d %s", code, raw)
	}

	// A user in 20 groups: judging a grant for it reads the grants of each
	// group, more units than the 16 compares a transaction may have.
	for g := range 20 {
		if code, raw := call(a, "PUT", fmt.Sprintf("/v1/groups/g%d/members/wide", g), "", nil); code != 200 && code != 201 {
			t.Fatalf("member of g%d: %d %s", g, code, raw)
		}
	}
	if code, raw := call(a, "POST", "/v1/assignments", strings.TrimSpace(permissionLine("wide")), nil); code != 201 {
		t.Fatalf("a grant for a user in 20 groups: %d %s", code, raw)
	}

	// Sidecar B is told --etcd-max-txn-ops 1000 on this cluster of 16.
	f.args = []string{"--etcd-max-txn-ops", "1000"}
	f.sidecars = append(f.sidecars, f.start(1))
	f.waitReady(1)
	b := f.sidecar(1)
	// chunk=2: lines 1–2 fit the cluster (15 entries), lines 3–4 do not
	// (B plans them as one commit; etcd refuses it).
	r = postImport(t, b, "?chunk=2", permissionLine("forced1")+permissionLine("forced2")+strings.Replace(projectRoleLine, "user:proj", "user:forced3", 1)+permissionLine("forced4")+permissionLine("forced5"))
	if r.status != 413 || !strings.Contains(string(r.raw), "etcd refused the transaction for this write") ||
		!strings.Contains(string(r.raw), "--etcd-max-txn-ops of 1000") || !strings.Contains(string(r.raw), "lines 1 to 2 are imported") ||
		r.header.Get("X-Permatrix-Imported") != "2" {
		t.Fatalf("B, over the cluster's limit: %d %v %s", r.status, r.header, r.raw)
	}
	if !holdsGrant(t, b, "forced2") || holdsGrant(t, b, "forced3") || holdsGrant(t, b, "forced4") {
		t.Fatal("B's refused commit stored something, or its first did not")
	}
	code, raw = call(b, "POST", "/v1/assignments", strings.TrimSpace(projectRoleLine), nil)
	if code != 413 || !bytes.Contains(raw, []byte("etcd refused the transaction")) || holdsGrant(t, b, "proj") {
		t.Fatalf("B, a single write over the cluster's limit: %d %s", code, raw)
	}
	// B stays ready, and takes writes that fit.
	if code, raw := call(b, "GET", "/health/ready", "", nil); code != 200 {
		t.Fatalf("B not ready after the refusals: %d %s", code, raw)
	}
	if code, raw := call(b, "POST", "/v1/assignments", strings.TrimSpace(permissionLine("fits")), nil); code != 201 {
		t.Fatalf("B, a write that fits: %d %s", code, raw)
	}
}
