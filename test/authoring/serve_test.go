package authoring_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix/test/harness"
)

const token = "authoring-token"

// server is a running `permatrix serve`.
type server struct{ *harness.Process }

// serve starts `permatrix serve` with args on a free port and a new db
// (unless args give --db) and waits for its "serving" line.
func serve(t *testing.T, args ...string) *server {
	t.Helper()
	s, err := startServe(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Logs())
	}
	return s
}

func startServe(t *testing.T, args ...string) (*server, error) {
	t.Helper()
	full := append([]string{"--addr", "127.0.0.1:0", "--admin-token", token}, args...)
	if !strings.Contains(strings.Join(args, " "), "--db") {
		full = append(full, "--db", filepath.Join(t.TempDir(), "permatrix.db"))
	}
	p, err := harness.StartProcess(t, bin, token, nil, full...)
	return &server{p}, err
}

func (s *server) stop(t *testing.T) { s.Stop(t) }

func (s *server) do(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	return s.Do(t, method, path, body)
}

func (s *server) assign(t *testing.T, body string) {
	t.Helper()
	if code, raw := s.do(t, "POST", "/v1/assignments", body); code != 201 {
		t.Fatalf("assign %s: %d %s", body, code, raw)
	}
}

// allowed asks /v1/check and returns allow; anything but 200 fails.
func (s *server) allowed(t *testing.T, check string) bool {
	t.Helper()
	code, raw := s.do(t, "POST", "/v1/check", check)
	if code != 200 {
		t.Fatalf("check %s: %d %s", check, code, raw)
	}
	var d struct{ Allow bool }
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	return d.Allow
}

// eventually polls cond every 50ms for up to 15s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// demoLayout writes a bundle directory laid out like the repository: the
// repository's own entrypoints, library and write rules (policies/permatrix)
// plus a small "demo" system whose policy the tests edit, so that they do
// not depend on any vendor's policy.
func demoLayout(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(harness.Root(), "policies", "permatrix")
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".rego") {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		return copyFile(p, filepath.Join(dir, "policies", "permatrix", rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "systems", "demo", "data.json"), demoCatalog)
	write(t, filepath.Join(dir, "policies", "demo", "demo.rego"), demoPolicy(`{"read"}`))
	return dir
}

const demoCatalog = `{
  "name": "Demo", "vendor": "test", "package": "demo", "documents": [],
  "scope_types": ["service", "project"], "context_keys": {},
  "roles": {
    "viewer": {"name": "Viewer", "scopes": ["service", "project"]},
    "editor": {"name": "Editor", "scopes": ["service", "project"]}
  },
  "permissions": {},
  "actions": {
    "read": {"scopes": ["service", "project"]},
    "write": {"scopes": ["service", "project"]}
  },
  "custom_roles": false
}
`

// demoPolicy is the demo system's policy; viewer is what a viewer may do.
func demoPolicy(viewer string) string {
	return `package permatrix.systems.demo

import data.permatrix.lib

allowed := {"viewer": ` + viewer + `, "editor": {"read", "write"}}

reasons contains lib.reason(g) if {
	some g in lib.grants
	g.system == "demo"
	input.action in allowed[g.role]
	lib.covers(g.scope, lib.scope)
}

missing contains lib.missing_role("demo", "editor", lib.scope) if count(reasons) == 0

decision := lib.verdict(reasons, missing)
`
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	// Write and rename, as editors do, so the watcher never reads half a file.
	tmp := path + ".tmp~"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o644)
}

func copyTree(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		return copyFile(p, filepath.Join(to, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

// bundleRevision is the serving bundle's revision (/health?bundles).
func (s *server) bundleRevision(t *testing.T) string {
	t.Helper()
	code, raw := s.do(t, "GET", "/health?bundles", "")
	var h struct {
		Bundles map[string]struct {
			Revision string `json:"revision"`
		} `json:"bundles"`
	}
	if err := json.Unmarshal(raw, &h); code != 200 || err != nil || h.Bundles["permatrix"].Revision == "" {
		t.Fatalf("/health?bundles: %d %s", code, raw)
	}
	return h.Bundles["permatrix"].Revision
}

// `serve --bundle .` in the repository root (an OPA bundle directory for
// `opa test -b .` too) serves exactly the embedded bundle: the revision is
// a digest of the modules and data, so equal revisions are equal bundles.
// A tree in the earlier layout (catalogs under data/systems/) still serves
// the same; a directory with a .manifest is an OPA bundle directory, its
// manifest's revision kept.
func TestServeTheRepositoryRoot(t *testing.T) {
	embedded := serve(t)
	want := embedded.bundleRevision(t)
	root := serve(t, "--bundle", ".")
	if got := root.bundleRevision(t); got != want {
		t.Fatalf("--bundle . serves %s, the embedded bundle is %s", got, want)
	}
	root.assign(t, `{"subject":"user:ann","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"service"}}`)
	if !root.allowed(t, `{"subject":"ann","system":"celonis-task-mining","action":"edit_users"}`) {
		t.Fatal("--bundle . does not decide")
	}

	legacy := t.TempDir()
	for _, c := range []struct{ from, to string }{{"policies", "policies"}, {"systems", filepath.Join("data", "systems")}} {
		if err := os.CopyFS(filepath.Join(legacy, c.to), os.DirFS(filepath.Join(harness.Root(), c.from))); err != nil {
			t.Fatal(err)
		}
	}
	if got := serve(t, "--bundle", legacy).bundleRevision(t); got != want {
		t.Fatalf("a policies/ + data/systems/ tree serves %s, want %s", got, want)
	}

	// The same tree with a .manifest (and the catalogs placed as an OPA
	// bundle places them, data.json by directory) is read as a bundle.
	manifested := t.TempDir()
	if err := os.CopyFS(manifested, os.DirFS(legacy)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(manifested, "data", "systems"), filepath.Join(manifested, "systems")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(manifested, ".manifest"), `{"revision":"from-the-manifest","roots":["permatrix","systems"]}`)
	if err := filepath.WalkDir(filepath.Join(manifested, "policies"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, "_test.rego") {
			err = os.Remove(p)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if got := serve(t, "--bundle", manifested).bundleRevision(t); got != "from-the-manifest" {
		t.Fatalf("a bundle directory with a .manifest serves %s", got)
	}
}
