package dataset_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"

	"github.com/permatrix/permatrix/test/bench/dataset"
	"github.com/permatrix/permatrix/test/harness"
)

func newSet(t *testing.T, seed uint64) *dataset.Set {
	t.Helper()
	s, err := dataset.New(dataset.Config{Seed: seed, Users: 300, CustomRoles: 10}, filepath.Join(harness.Root(), "systems"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func importBytes(t *testing.T, s *dataset.Set) []byte {
	t.Helper()
	var b bytes.Buffer
	n, err := s.WriteImport(&b)
	if err != nil {
		t.Fatal(err)
	}
	if n != s.Lines() {
		t.Fatalf("wrote %d lines, Lines() says %d", n, s.Lines())
	}
	return b.Bytes()
}

// The same seed gives the same bytes; another seed other bytes.
func TestDeterministic(t *testing.T) {
	a, b, c := importBytes(t, newSet(t, 1)), importBytes(t, newSet(t, 1)), importBytes(t, newSet(t, 2))
	if !bytes.Equal(a, b) {
		t.Fatal("two imports of seed 1 differ")
	}
	if bytes.Equal(a, c) {
		t.Fatal("seeds 1 and 2 gave the same import")
	}
	var x, y bytes.Buffer
	s1, s2 := newSet(t, 1), newSet(t, 1)
	if err := s1.WriteChecks(&x, s1.HotUsers(50)); err != nil {
		t.Fatal(err)
	}
	if err := s2.WriteChecks(&y, s2.HotUsers(50)); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x.Bytes(), y.Bytes()) {
		t.Fatal("the checks of seed 1 differ between two runs")
	}
}

func TestSizes(t *testing.T) {
	if _, err := dataset.New(dataset.Config{Users: 100, Assignments: 50}, filepath.Join(harness.Root(), "systems")); err == nil {
		t.Fatal("fewer assignments than users: want an error")
	}
	if _, err := dataset.New(dataset.Config{Users: 100, Assignments: 1000}, filepath.Join(harness.Root(), "systems")); err == nil {
		t.Fatal("more than three assignments a user: want an error")
	}
}

// A dataset loaded into a real server: every write and import line is
// accepted, the store holds exactly the planned assignments (no line
// repeats another, the project creators' included), and every check is
// valid, some allowed and some denied.
func TestLoadsIntoServer(t *testing.T) {
	s := newSet(t, 7)
	srv := harness.Start(t, harness.Options{})
	ctx := context.Background()
	target := dataset.Target{URL: srv.URL, Token: harness.Token}
	sr, err := s.Setup(ctx, target, 4)
	if err != nil {
		t.Fatal(err)
	}
	if sr.Roles != 10 || sr.Projects != s.Projects || sr.Memberships != s.Groups*s.MembersPerGroup {
		t.Fatalf("setup wrote %+v, want 10 roles, %d projects, %d memberships", sr, s.Projects, s.Groups*s.MembersPerGroup)
	}
	ir, err := dataset.Import(ctx, target, 100, bytes.NewReader(importBytes(t, s)))
	if err != nil {
		t.Fatal(err)
	}
	if ir.Imported != s.Lines() {
		t.Fatalf("imported %d, want %d", ir.Imported, s.Lines())
	}
	stored, cursor := 0, ""
	for {
		status, body, err := target.Do(ctx, http.MethodGet, "/v1/assignments?limit=1000&cursor="+cursor, nil)
		if err != nil || status != http.StatusOK {
			t.Fatalf("list: %d %s %v", status, body, err)
		}
		var page struct {
			Assignments []json.RawMessage `json:"assignments"`
			Next        string            `json:"next_cursor"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			t.Fatal(err)
		}
		stored += len(page.Assignments)
		if cursor = page.Next; cursor == "" {
			break
		}
	}
	if stored != s.Assignments {
		t.Fatalf("the store holds %d assignments, the dataset plans %d", stored, s.Assignments)
	}

	var checks bytes.Buffer
	if err := s.WriteChecks(&checks, s.HotUsers(s.Users)); err != nil {
		t.Fatal(err)
	}
	var batch struct {
		Checks []json.RawMessage `json:"checks"`
	}
	for _, line := range bytes.Split(bytes.TrimSpace(checks.Bytes()), []byte("\n")) {
		batch.Checks = append(batch.Checks, line)
	}
	resp := srv.Do(http.MethodPost, "/v1/check/batch", batch, false)
	if resp.Status != http.StatusOK {
		t.Fatalf("batch: %d %s", resp.Status, resp.Raw)
	}
	results, _ := resp.Body["results"].([]any)
	allowed := 0
	for i, r := range results {
		m, _ := r.(map[string]any)
		if m["error"] != nil {
			t.Fatalf("check %s: %v", batch.Checks[i], m["error"])
		}
		if m["allow"] == true {
			allowed++
		}
	}
	if len(results) != s.Users || allowed == 0 || allowed == len(results) {
		t.Fatalf("%d results, %d allowed: want %d, some allowed and some denied", len(results), allowed, s.Users)
	}
	t.Logf("%d of %d checks allowed", allowed, len(results))
}
