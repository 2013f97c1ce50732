package security_test

// Issue 9's hardening attempts replayed against `permatrix serve` started
// from the binary: each row asserts the status and that nothing changed.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

const token = "security-test-token"

// serve starts `permatrix serve` on a free port with the admin token and
// the store at db, and more flags.
func serve(t *testing.T, db string, args ...string) *harness.Process {
	t.Helper()
	p, err := harness.StartProcess(t, bin, token, nil,
		append([]string{"--addr", "127.0.0.1:0", "--db", db, "--admin-token", token}, args...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, p.Logs())
	}
	return p
}

// answer is one decoded response.
type answer struct {
	status int
	body   map[string]any
	raw    []byte
}

// errorCode is the envelope's code, "" when the body is not the envelope.
func (a answer) errorCode() string {
	e, _ := a.body["error"].(map[string]any)
	code, _ := e["code"].(string)
	if msg, _ := e["message"].(string); msg == "" || len(a.body) != 1 {
		return ""
	}
	return code
}

// opaErrorCode is the code of OPA's envelope ({"code","message","errors"?},
// on OPA's REST API paths), "" when the body is not that envelope.
func (a answer) opaErrorCode() string {
	code, _ := a.body["code"].(string)
	if msg, _ := a.body["message"].(string); msg == "" || a.body["error"] != nil {
		return ""
	}
	return code
}

func (a answer) message() string {
	e, _ := a.body["error"].(map[string]any)
	msg, _ := e["message"].(string)
	return msg
}

// call sends a request; admin adds the admin token; headers are pairs.
func call(t *testing.T, p *harness.Process, method, path, body string, admin bool, headers ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, p.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if admin {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, raw: raw}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

// export is the whole store (GET /v1/export), for "nothing changed".
func export(t *testing.T, p *harness.Process) string {
	t.Helper()
	a := call(t, p, http.MethodGet, "/v1/export", "", true)
	if a.status != 200 {
		t.Fatalf("export: %d %s", a.status, a.raw)
	}
	return string(a.raw)
}

// assignmentIDs lists the ids of the assignments in an export.
func assignmentIDs(t *testing.T, exported string) []string {
	t.Helper()
	var doc struct {
		Store struct {
			Grants map[string]map[string]map[string]map[string]map[string]struct {
				Assignment string `json:"assignment"`
			} `json:"grants"`
		} `json:"store"`
	}
	if err := json.Unmarshal([]byte(exported), &doc); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, systems := range doc.Store.Grants {
		for _, kinds := range systems {
			for _, names := range kinds {
				for _, scopes := range names {
					for _, g := range scopes {
						ids = append(ids, g.Assignment)
					}
				}
			}
		}
	}
	slices.Sort(ids)
	return ids
}

func assignment(user string) string {
	return fmt.Sprintf(`{"subject":"user:%s","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`, user)
}

// Item 6 (and 9): a full disk answers 507 with the cause, turns /health
// not-ready until the disk takes writes again, and loses no acknowledged
// write. The disk is a real tmpfs, filled for real.
func TestFullDisk(t *testing.T) {
	dir := harness.MountTmpfs(t, 2<<20)
	db := filepath.Join(dir, "permatrix.db")
	p := serve(t, db, "--store-probe-interval", "100ms")
	var acked []string
	write := func(user string) answer {
		a := call(t, p, http.MethodPost, "/v1/assignments", assignment(user), true)
		if a.status == http.StatusCreated {
			acked = append(acked, a.body["id"].(string))
		}
		return a
	}
	for i := range 5 {
		if a := write(fmt.Sprintf("before%d", i)); a.status != 201 {
			t.Fatalf("write before the disk filled: %d %s", a.status, a.raw)
		}
	}
	filler := harness.FillDisk(t, dir)

	var refused answer
	for i := 0; refused.status == 0; i++ {
		if i == 2000 {
			t.Fatal("2,000 writes on a full disk all succeeded")
		}
		switch a := write(fmt.Sprintf("full%04d", i)); a.status {
		case http.StatusCreated:
		case http.StatusInsufficientStorage:
			refused = a
		default:
			t.Fatalf("write on a full disk: %d %s", a.status, a.raw)
		}
	}
	if refused.errorCode() != "insufficient_storage" ||
		!strings.Contains(refused.message(), "no space left on device: store "+db) || !strings.Contains(refused.message(), "nothing was written") {
		t.Fatalf("507 body: %s", refused.raw)
	}
	t.Logf("%d writes acknowledged, then %d %s", len(acked), refused.status, refused.message())
	before := export(t, p)
	if got := assignmentIDs(t, before); !slices.Equal(got, sorted(acked)) {
		t.Fatalf("while full the store holds %v, acknowledged %v", got, acked)
	}
	for _, path := range []string{"/health", "/health/ready"} {
		a := call(t, p, http.MethodGet, path, "", false)
		if a.status != 503 || a.body["status"] != "unavailable" || !strings.Contains(fmt.Sprint(a.body["store_error"]), "no space left on device") {
			t.Fatalf("%s while the disk is full: %d %s", path, a.status, a.raw)
		}
	}
	if a := call(t, p, http.MethodGet, "/health/live", "", false); a.status != 200 {
		t.Fatalf("/health/live: %d", a.status)
	}
	// The HEALTHCHECK's command says so too (exit 1, the cause on stderr).
	if _, stderr, code := harness.Run(t, "", bin, "health", "--url", p.URL); code != 1 || !strings.Contains(stderr, "no space left on device") {
		t.Fatalf("permatrix health while the disk is full: exit %d %s", code, stderr)
	}
	// Decisions go on: they only read.
	if a := call(t, p, http.MethodPost, "/v1/check", `{"subject":"before0","system":"celonis-task-mining","action":"edit_users"}`, false); a.status != 200 || a.body["allow"] != true {
		t.Fatalf("check while the disk is full: %d %s", a.status, a.raw)
	}
	// Another write fails the same way and changes nothing.
	if a := write("still-full"); a.status != 507 {
		t.Fatalf("second write on the full disk: %d %s", a.status, a.raw)
	}
	if after := export(t, p); after != before {
		t.Fatal("a refused write changed the store")
	}

	// Free the disk: the probe finds it writable and /health recovers.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for call(t, p, http.MethodGet, "/health", "", false).status != 200 {
		if time.Now().After(deadline) {
			t.Fatal("/health still not ready 10s after the disk was freed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if a := write("after"); a.status != 201 {
		t.Fatalf("write after the disk was freed: %d %s", a.status, a.raw)
	}
	if stdout, stderr, code := harness.Run(t, "", bin, "health", "--url", p.URL); code != 0 {
		t.Fatalf("permatrix health after the disk was freed: exit %d %s%s", code, stdout, stderr)
	}

	// Every acknowledged write is in the file.
	p.Stop(t)
	p = serve(t, db)
	if got := assignmentIDs(t, export(t, p)); !slices.Equal(got, sorted(acked)) {
		t.Fatalf("after restart the store holds %v, acknowledged %v", got, acked)
	}
	p.Stop(t)
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// copyLayout copies the repository's policies/ and systems/ into a new
// directory: a bundle to break.
func copyLayout(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	for _, sub := range []string{"policies", "systems"} {
		src := filepath.Join(harness.Root(), sub)
		err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(harness.Root(), path)
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// editJSON rewrites a JSON file through edit.
func editJSON(t *testing.T, path string, edit func(m map[string]any)) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	raw, _ = json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// brokenBundles are issue 9 item 7's bundles that load but cannot work:
// each edit of a copy of the repository's layout, and what the refusal says.
var brokenBundles = []struct {
	name string
	edit func(t *testing.T, dir string)
	want string
}{
	{"catalog names a missing package", func(t *testing.T, dir string) {
		editJSON(t, filepath.Join(dir, "systems/celonis-studio/data.json"), func(m map[string]any) { m["package"] = "celonis_studio_gone" })
	}, `data.systems[\"celonis-studio\"] names package \"celonis_studio_gone\"`},
	{"catalog lacks roles", func(t *testing.T, dir string) {
		editJSON(t, filepath.Join(dir, "systems/celonis-studio/data.json"), func(m map[string]any) { delete(m, "roles") })
	}, `data.systems[\"celonis-studio\"] lacks roles`},
	{"catalog lacks actions and scope_types", func(t *testing.T, dir string) {
		editJSON(t, filepath.Join(dir, "systems/celonis-studio/data.json"), func(m map[string]any) { delete(m, "actions"); delete(m, "scope_types") })
	}, `data.systems[\"celonis-studio\"] lacks scope_types, actions`},
	{"catalog file deleted", func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, "systems/celonis-studio/data.json")); err != nil {
			t.Fatal(err)
		}
	}, "package permatrix.systems.celonis_studio is named by no catalog"},
}

const studioCheck = `{"subject":"ann","system":"celonis-studio","action":"create_package","resource":{"type":"space","id":"s1"}}`

// Item 7 at startup: serve refuses each broken bundle, exits non-zero and
// says why.
func TestBrokenBundleRefusedAtStartup(t *testing.T) {
	for _, c := range brokenBundles {
		t.Run(c.name, func(t *testing.T) {
			dir := copyLayout(t)
			c.edit(t, dir)
			p, err := harness.StartProcess(t, bin, token, nil, "--addr", "127.0.0.1:0", "--db", filepath.Join(t.TempDir(), "db"), "--admin-token", token, "--bundle", dir)
			if err == nil {
				p.Stop(t)
				t.Fatal("serve started with the broken bundle")
			}
			if !strings.Contains(err.Error(), "exit status") || strings.Contains(err.Error(), "exit status 0") {
				t.Fatalf("serve: %v", err)
			}
			if logs := strings.ReplaceAll(p.Logs(), `\"`, `"`); !strings.Contains(logs, strings.ReplaceAll(c.want, `\"`, `"`)) {
				t.Fatalf("serve's reason lacks %s:\n%s", c.want, p.Logs())
			}
		})
	}
}

// Item 7 on reload: with --watch each broken edit leaves the last good
// bundle serving (same decisions, same store) and /health?bundles shows
// the reason; restoring the file clears it.
func TestBrokenBundleRefusedOnReload(t *testing.T) {
	dir := copyLayout(t)
	p := serve(t, filepath.Join(t.TempDir(), "db"), "--bundle", dir, "--watch", "--watch-debounce", "50ms")
	if a := call(t, p, http.MethodPost, "/v1/assignments", `{"subject":"user:ann","system":"celonis-studio","permission":"create_package","scope":{"type":"space","id":"s1"}}`, true); a.status != 201 {
		t.Fatalf("assign: %d %s", a.status, a.raw)
	}
	decision := call(t, p, http.MethodPost, "/v1/check", studioCheck, false)
	if decision.status != 200 || decision.body["allow"] != true {
		t.Fatalf("check: %d %s", decision.status, decision.raw)
	}
	store := export(t, p)
	file := filepath.Join(dir, "systems/celonis-studio/data.json")
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range brokenBundles {
		c.edit(t, dir)
		deadline := time.Now().Add(10 * time.Second)
		for {
			h := call(t, p, http.MethodGet, "/health?bundles", "", false)
			if strings.Contains(string(h.raw), c.want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /health?bundles never showed %s: %s", c.name, c.want, h.raw)
			}
			time.Sleep(50 * time.Millisecond)
		}
		a := call(t, p, http.MethodPost, "/v1/check", studioCheck, false)
		if a.status != 200 || a.body["allow"] != decision.body["allow"] {
			t.Fatalf("%s: the check changed: %d %s, was %s", c.name, a.status, a.raw, decision.raw)
		}
		if export(t, p) != store {
			t.Fatalf("%s: the store changed", c.name)
		}
		// Restore: the good bundle loads and the error clears.
		if err := os.WriteFile(file, good, 0o644); err != nil {
			t.Fatal(err)
		}
		for call(t, p, http.MethodGet, "/health?bundles", "", false).body["bundles"].(map[string]any)["permatrix"].(map[string]any)["last_error"] != nil {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the restored bundle did not load", c.name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	p.Stop(t)
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// populated serves a store with an assignment, a membership and a project.
func populated(t *testing.T) *harness.Process {
	t.Helper()
	p := serve(t, filepath.Join(t.TempDir(), "permatrix.db"))
	for _, w := range []struct{ method, path, body string }{
		{http.MethodPost, "/v1/assignments", assignment("ann")},
		{http.MethodPut, "/v1/groups/g1/members/ann", ""},
		{http.MethodPut, "/v1/systems/celonis-task-mining/projects/p1", `{"created_by":"ann","kind":"assisted"}`},
	} {
		if a := call(t, p, w.method, w.path, w.body, true); a.status >= 300 {
			t.Fatalf("%s %s: %d %s", w.method, w.path, a.status, a.raw)
		}
	}
	return p
}

// Item 2: the store is not readable without the admin token, through any
// Data API path; the policy entrypoints are.
func TestDataAPIExposure(t *testing.T) {
	p := populated(t)
	store := export(t, p)
	for _, path := range []string{"/v1/data", "/v1/data/", "/v1/data/store", "/v1/data/store/grants", "/v1/data/store/memberships",
		"/v1/data/store/projects", "/v1/data/store/groups", "/v1/data/store/grants/user:ann", "/v1/data/systems", "/v1/data/permatrix",
		"/v1/data/permatrix/lib", "/v1/data/permatrix/admin", "/v1/data//store", "/v1/data/store%2Fgrants", "/v1/data/q1/x"} {
		for _, method := range []string{http.MethodGet, http.MethodPost} {
			for _, headers := range [][]string{nil, {"Authorization", "Bearer wrong"}, {"Authorization", "Basic " + token}, {"Authorization", "Bearer " + token + "x"}, {"Authorization", token}} {
				a := call(t, p, method, path, `{"input":{}}`, false, headers...)
				if a.status != 401 || a.opaErrorCode() != "unauthorized" || strings.Contains(string(a.raw), "user:ann") {
					t.Fatalf("%s %s %v: %d %s", method, path, headers, a.status, a.raw)
				}
			}
		}
		if a := call(t, p, http.MethodGet, path, "", true); a.status != 200 {
			t.Fatalf("GET %s with the token: %d %s", path, a.status, a.raw)
		}
	}
	if a := call(t, p, http.MethodGet, "/v1/data/store/grants", "", true); !strings.Contains(string(a.raw), "user:ann") {
		t.Fatalf("the operator reads the store: %s", a.raw)
	}
	for _, path := range []string{"/v1/data/permatrix/allow", "/v1/data/permatrix/decision", "/v1/data/permatrix/admin/verdict", "/v1/data/permatrix/decision/allow"} {
		a := call(t, p, http.MethodPost, path, `{"input":{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}}`, false)
		if a.status != 200 || a.body["result"] == nil {
			t.Fatalf("entrypoint %s: %d %s", path, a.status, a.raw)
		}
	}
	if export(t, p) != store {
		t.Fatal("the store changed")
	}
	p.Stop(t)
}

// samples counts the sample lines of /metrics.
func samples(t *testing.T, p *harness.Process) int {
	t.Helper()
	a := call(t, p, http.MethodGet, "/metrics", "", false)
	n := 0
	for line := range strings.SplitSeq(string(a.raw), "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			n++
		}
	}
	return n
}

// metric is the value of an unlabelled metric on /metrics.
func metric(t *testing.T, p *harness.Process, name string) float64 {
	t.Helper()
	a := call(t, p, http.MethodGet, "/metrics", "", false)
	for line := range strings.SplitSeq(string(a.raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no %s on /metrics", name)
	return 0
}

// Items 5 and 8: clients choosing Host headers, paths and methods add no
// series to /metrics; 20,000 distinct Data API paths leave the heap as it
// was.
func TestNothingClientsChooseGrows(t *testing.T) {
	p := populated(t)
	store := export(t, p)
	junk := func(i int) {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/junk/%d", p.URL, i), nil)
		req.Host = fmt.Sprintf("h%d.example", i)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if a := call(t, p, fmt.Sprintf("M%d", i), "/v1/check", "", false); a.status != 405 {
			t.Fatalf("method M%d: %d", i, a.status)
		}
		call(t, p, http.MethodGet, "/health", "", false, "Host", fmt.Sprintf("x%d", i))
	}
	junk(0)
	before := samples(t, p)
	for i := 1; i <= 5000; i++ {
		junk(i)
	}
	if after := samples(t, p); after != before {
		t.Fatalf("/metrics went from %d to %d series over 5,000 distinct hosts, paths and methods", before, after)
	}

	// Without the token such paths are refused before any evaluation;
	// with it (the worst case) they are evaluated and must leave nothing.
	for i := range 1000 {
		if a := call(t, p, http.MethodGet, fmt.Sprintf("/v1/data/q%d/x", i), "", false); a.status != 401 {
			t.Fatalf("GET /v1/data/q%d/x without the token: %d %s", i, a.status, a.raw)
		}
	}
	heap := metric(t, p, "go_memstats_heap_inuse_bytes")
	for i := range 20000 {
		if a := call(t, p, http.MethodGet, fmt.Sprintf("/v1/data/q%d/x", i), "", true); a.status != 200 || len(a.body) != 1 || a.body["decision_id"] == nil {
			t.Fatalf("GET /v1/data/q%d/x: %d %s", i, a.status, a.raw)
		}
	}
	grew := metric(t, p, "go_memstats_heap_inuse_bytes") - heap
	t.Logf("heap in use grew by %.1f MiB over 20,000 Data API paths", grew/(1<<20))
	if grew > 40<<20 {
		t.Fatalf("heap in use grew by %.0f MiB over 20,000 Data API paths (it was 117 MiB with an unbounded cache)", grew/(1<<20))
	}
	if export(t, p) != store {
		t.Fatal("the store changed")
	}
	p.Stop(t)
}

// Item 11: what used to answer 500 or plain text, and check inputs the
// store would refuse.
func TestSmallerFindings(t *testing.T) {
	p := populated(t)
	store := export(t, p)
	long := strings.Repeat("x", 300)
	rows := []struct {
		name, method, path, body string
		admin                    bool
		headers                  []string
		status                   int
		code                     string
	}{
		{"string input to decision (stock opa: a decision)", "POST", "/v1/data/permatrix/decision", `{"input":"alice"}`, false, nil, 200, ""},
		{"number input to allow", "POST", "/v1/data/permatrix/allow", `{"input":42}`, false, nil, 200, ""},
		{"NUL path without the token", "GET", "/v1/data/%00", "", false, nil, 401, "unauthorized"},
		{"NUL path with the token", "GET", "/v1/data/%00", "", true, nil, 200, ""},
		{"quote in path", "GET", "/v1/data/a%22b", "", true, nil, 200, ""},
		{"control-character subject", "POST", "/v1/check", `{"subject":"\u0001\u0002","system":"celonis-task-mining","action":"edit_users"}`, false, nil, 400, "invalid"},
		{"300-byte subject", "POST", "/v1/check", `{"subject":"` + long + `","system":"celonis-task-mining","action":"edit_users"}`, false, nil, 400, "invalid"},
		{"300-byte resource id", "POST", "/v1/check", `{"subject":"ann","system":"celonis-task-mining","action":"edit_users","resource":{"type":"project","id":"` + long + `"}}`, false, nil, 400, "invalid"},
		{"control-character group", "POST", "/v1/check", `{"subject":"ann","system":"celonis-task-mining","action":"edit_users","groups":["g\n"]}`, false, nil, 400, "invalid"},
		// An identity that is not a user id is no identity: 401.
		{"forward-auth subject with a tab", "GET", "/v1/forward-auth", "", false, []string{"X-Forwarded-User", "a\tb", "X-Permatrix-System", "celonis-task-mining", "X-Permatrix-Action", "edit_users"}, 401, "unauthorized"},
		{"forward-auth 300-byte resource id", "GET", "/v1/forward-auth", "", false, []string{"X-Forwarded-User", "ann", "X-Permatrix-System", "celonis-task-mining", "X-Permatrix-Action", "edit_users", "X-Permatrix-Resource-Type", "project", "X-Permatrix-Resource-Id", long}, 400, "invalid"},
		{"permissions of a 300-byte resource", "GET", "/v1/subjects/ann/permissions?system=celonis-task-mining&resource_type=project&resource_id=" + long, "", false, nil, 400, "invalid"},
		{"permissions of a control-character user", "GET", "/v1/subjects/a%01/permissions", "", false, nil, 400, "invalid"},
		{"huge header", "GET", "/health", "", false, []string{"X-Big", strings.Repeat("b", 100<<10)}, 431, "headers_too_large"},
	}
	for _, r := range rows {
		a := call(t, p, r.method, r.path, r.body, r.admin, r.headers...)
		code := a.errorCode()
		if strings.HasPrefix(r.path, "/v1/data") {
			code = a.opaErrorCode() // OPA's envelope on OPA's paths
		}
		if a.status != r.status || r.code != "" && code != r.code {
			t.Errorf("%s: %d %s, want %d %s", r.name, a.status, a.raw, r.status, r.code)
		}
	}
	// A batch item the store would refuse fails alone.
	a := call(t, p, http.MethodPost, "/v1/check/batch", `{"checks":[{"subject":"ann","system":"celonis-task-mining","action":"edit_users"},{"subject":"`+long+`","system":"celonis-task-mining","action":"edit_users"}]}`, false)
	results, _ := a.body["results"].([]any)
	if a.status != 200 || len(results) != 2 || results[0].(map[string]any)["allow"] != true || results[1].(map[string]any)["error"] == nil {
		t.Errorf("batch: %d %s", a.status, a.raw)
	}
	// Bad percent-encoding never reaches a handler: net/http's answer,
	// rewritten into the envelope. (Go's client refuses to send it: raw.)
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(conn, "GET /v1/data/%zz HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	conn.Close()
	var env map[string]map[string]any
	if resp.StatusCode != 400 || resp.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &env) != nil || env["error"]["code"] != "invalid" {
		t.Errorf("bad escape: %d %s", resp.StatusCode, body)
	}
	if export(t, p) != store {
		t.Fatal("the store changed")
	}
	p.Stop(t)
}
