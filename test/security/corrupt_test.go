package security_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/test/harness"
)

// crashSigns are what a Go panic, a fault or a stack dump leave in output.
var crashSigns = regexp.MustCompile(`(?m)^panic: |^fatal error: |goroutine \d+ \[|\[signal SIG|unexpected fault address`)

// realStore makes a store file through the binary: assignments of several
// systems, group memberships, a custom role and projects.
func realStore(t *testing.T) (db, exported string) {
	t.Helper()
	db = filepath.Join(t.TempDir(), "permatrix.db")
	p := serve(t, db)
	for i := range 40 {
		if a := call(t, p, http.MethodPost, "/v1/assignments", assignment(fmt.Sprintf("user%02d", i)), true); a.status != 201 {
			t.Fatalf("assign: %d %s", a.status, a.raw)
		}
		if a := call(t, p, http.MethodPut, fmt.Sprintf("/v1/groups/g%d/members/user%02d", i%4, i), "", true); a.status != 200 {
			t.Fatalf("member: %d %s", a.status, a.raw)
		}
	}
	for _, path := range []string{"/v1/systems/celonis-task-mining/projects/p1", "/v1/systems/celonis-task-mining/projects/p2"} {
		if a := call(t, p, http.MethodPut, path, `{"created_by":"user01","kind":"assisted"}`, true); a.status != 200 {
			t.Fatalf("project: %d %s", a.status, a.raw)
		}
	}
	if a := call(t, p, http.MethodPut, "/v1/systems/blueprism/roles/operators", `{"permissions":["security_users"]}`, true); a.status != 200 {
		t.Fatalf("role: %d %s", a.status, a.raw)
	}
	if a := call(t, p, http.MethodDelete, "/v1/assignments/a000000000003", "", true); a.status != 200 {
		t.Fatalf("delete: %d %s", a.status, a.raw) // leaves freed pages in the file
	}
	exported = export(t, p)
	p.Stop(t)
	return db, exported
}

// corruption is a damaged copy of a store file.
type corruption struct {
	name string
	data []byte
}

func corruptions(orig []byte) []corruption {
	const page = 4096
	var out []corruption
	add := func(name string, b []byte) { out = append(out, corruption{name, b}) }
	out = append(out, corruption{"0 bytes", nil})
	// bbolt grows a file in large steps (16 MiB) ahead of use: truncate at
	// every page of the part in use, and at a few points of the rest.
	used := inUse(orig, page)
	for size := page; size < len(orig); size += page {
		if size <= used || size%(1<<20) == 0 {
			add(fmt.Sprintf("truncated to %d", size), orig[:size])
		}
	}
	add("truncated mid-page", bytes.Clone(orig[:used/2+17]))
	add("truncated to 100", bytes.Clone(orig[:100]))
	for pg := 0; pg*page < used; pg++ {
		b := bytes.Clone(orig)
		clear(b[pg*page : min((pg+1)*page, len(b))])
		add(fmt.Sprintf("page %d zeroed", pg), b)
	}
	rng := rand.New(rand.NewPCG(9, 9))
	offsets := []int{0, 16, 24, 40, 56, 64, page, page + 16, page + 56, 2*page + 8, 2*page + 12}
	for range 40 {
		offsets = append(offsets, rng.IntN(used-16))
	}
	for _, off := range offsets {
		b := bytes.Clone(orig)
		for i := off; i < off+16 && i < len(b); i++ {
			b[i] ^= 0xff
		}
		add(fmt.Sprintf("16 bytes flipped at %d", off), b)
	}
	garbage := make([]byte, len(orig))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	add("random garbage", garbage)
	add("random garbage, 8 KiB", garbage[:8192])
	keepMeta := bytes.Clone(orig)
	copy(keepMeta[2*page:], garbage[2*page:])
	add("meta pages kept, the rest garbage", keepMeta)
	return out
}

// inUse is where the file's last non-zero page ends: past it lies space
// bbolt allocated ahead.
func inUse(b []byte, page int) int {
	end := len(b)
	for end > 0 && !slices.ContainsFunc(b[max(0, end-page):end], func(c byte) bool { return c != 0 }) {
		end -= page
	}
	return max(end, 2*page)
}

// Item 9: copies of a real store damaged in many ways. `store check` and
// `serve` agree on each: sound (check exits 0, serve serves valid
// assignments) or damaged (both exit 3 with a message). Never a panic, a
// stack dump or a signal; never an empty store that looks healthy.
func TestCorruptStore(t *testing.T) {
	db, want := realStore(t)
	orig, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	cases := corruptions(orig)
	if len(cases) < 50 {
		t.Fatalf("only %d corruptions", len(cases))
	}
	// Each case is its own pair of processes: two at a time (go test's
	// -parallel), as a serial loop they were the package's longest test.
	var mu sync.Mutex
	var refusedNames, undetected []string
	t.Run("each", func(t *testing.T) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				refused, differs := corruptCase(t, c, want)
				mu.Lock()
				defer mu.Unlock()
				if refused {
					refusedNames = append(refusedNames, c.name)
				}
				if differs {
					undetected = append(undetected, c.name)
				}
			})
		}
	})
	if t.Failed() {
		return
	}
	t.Logf("%d corruptions: %d refused; %d sound (damage in free or unused pages)", len(cases), len(refusedNames), len(cases)-len(refusedNames))
	if len(undetected) > 0 {
		t.Errorf("served a store that differs from the one written: %v", undetected)
	}
	for _, must := range []string{"0 bytes", "truncated to 4096", "truncated to 8192", "truncated to 100", "truncated mid-page", "random garbage", "random garbage, 8 KiB", "meta pages kept, the rest garbage"} {
		if !slices.Contains(refusedNames, must) {
			t.Errorf("%s: not refused", must)
		}
	}
}

// corruptCase runs store check and serve on one damaged copy: whether it
// was refused (both called it damaged), and whether a store served
// exported other than want.
func corruptCase(t *testing.T, c corruption, want string) (refused, differs bool) {
	path := filepath.Join(t.TempDir(), "permatrix.db")
	if err := os.WriteFile(path, c.data, 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := harness.Run(t, "", bin, "store", "check", "--db", path)
	if crashSigns.MatchString(stdout + stderr) {
		t.Fatalf("%s: store check crashed:\n%s%s", c.name, stdout, stderr)
	}
	switch code {
	case 0:
		if !strings.Contains(stdout, "is sound") {
			t.Fatalf("%s: store check exit 0 says %q", c.name, stdout)
		}
	case 3:
		if !strings.Contains(stdout, "is damaged:") {
			t.Fatalf("%s: store check exit 3 says %q %q", c.name, stdout, stderr)
		}
	default:
		t.Fatalf("%s: store check exit %d:\n%s%s", c.name, code, stdout, stderr)
	}

	p, err := harness.StartProcess(t, bin, token, nil, "--addr", "127.0.0.1:0", "--db", path, "--admin-token", token)
	if crashSigns.MatchString(p.Logs()) {
		t.Fatalf("%s: serve crashed:\n%s", c.name, p.Logs())
	}
	if err != nil {
		if got := p.Cmd.ProcessState.ExitCode(); got != 3 || code != 3 || !strings.Contains(p.Logs(), "is damaged") {
			t.Fatalf("%s: serve exit %d (store check %d): %v\n%s", c.name, got, code, err, p.Logs())
		}
		return true, false
	}
	if code != 0 {
		t.Fatalf("%s: serve started on a store that store check called damaged", c.name)
	}
	if a := call(t, p, http.MethodGet, "/health", "", false); a.status != 200 {
		t.Fatalf("%s: health %d", c.name, a.status)
	}
	exported := export(t, p)
	checkExport(t, c.name, exported)
	p.Stop(t)
	return false, exported != want
}

// checkExport fails on an exported grant with an invalid field.
func checkExport(t *testing.T, name, exported string) {
	t.Helper()
	var doc struct {
		Store struct {
			Grants map[string]map[string]map[string]map[string]map[string]struct {
				Kind       string          `json:"kind"`
				Role       string          `json:"role"`
				Permission string          `json:"permission"`
				Scope      permatrix.Scope `json:"scope"`
				Via        string          `json:"via"`
				Assignment string          `json:"assignment"`
			} `json:"grants"`
		} `json:"store"`
	}
	if err := jsonUnmarshal(exported, &doc); err != nil {
		t.Fatal(err)
	}
	for principal, systems := range doc.Store.Grants {
		for system, kinds := range systems {
			for kind, names := range kinds {
				for n, scopes := range names {
					for _, g := range scopes {
						a := permatrix.Assignment{ID: g.Assignment, Subject: g.Via, System: system, Role: g.Role, Permission: g.Permission, Scope: g.Scope}
						if a.Subject != principal || g.Kind != kind || (kind == "role" && a.Role != n) || (kind == "permission" && a.Permission != n) || a.Validate() != nil || a.ID == "" {
							t.Fatalf("%s: served grant %+v at %s/%s/%s/%s", name, g, principal, system, kind, n)
						}
					}
				}
			}
		}
	}
}
