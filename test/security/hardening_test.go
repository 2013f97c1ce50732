package security_test

// Issue 9's hardening attempts replayed against `permatrix serve` started
// from the binary: each row asserts the status and that nothing changed.

import (
	"encoding/json"
	"fmt"
	"io"
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
			Subjects map[string]map[string]any `json:"subjects"`
		} `json:"store"`
	}
	if err := json.Unmarshal([]byte(exported), &doc); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, as := range doc.Store.Subjects {
		for id := range as {
			ids = append(ids, id)
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

// copyLayout copies the repository's policies/ and data/ into a new
// directory: a bundle to break.
func copyLayout(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	for _, sub := range []string{"policies", "data"} {
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
		editJSON(t, filepath.Join(dir, "data/systems/celonis-studio/data.json"), func(m map[string]any) { m["package"] = "celonis_studio_gone" })
	}, `data.systems[\"celonis-studio\"] names package \"celonis_studio_gone\"`},
	{"catalog lacks roles", func(t *testing.T, dir string) {
		editJSON(t, filepath.Join(dir, "data/systems/celonis-studio/data.json"), func(m map[string]any) { delete(m, "roles") })
	}, `data.systems[\"celonis-studio\"] lacks roles`},
	{"catalog lacks actions and scope_types", func(t *testing.T, dir string) {
		editJSON(t, filepath.Join(dir, "data/systems/celonis-studio/data.json"), func(m map[string]any) { delete(m, "actions"); delete(m, "scope_types") })
	}, `data.systems[\"celonis-studio\"] lacks scope_types, actions`},
	{"catalog file deleted", func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, "data/systems/celonis-studio/data.json")); err != nil {
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
	file := filepath.Join(dir, "data/systems/celonis-studio/data.json")
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
