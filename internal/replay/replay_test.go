package replay_test

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/decisionlog"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/replay"
	"github.com/permatrix/permatrix/internal/store"
)

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
    "write": {"scopes": ["service", "project"]}%s
  },
  "custom_roles": false
}`

// demoPolicy decides the demo system: viewer may do what viewer says,
// editors read and write.
func demoPolicy(viewer string) string {
	return `package permatrix.systems.demo

import data.permatrix.lib

allowed := {"viewer": ` + viewer + `, "editor": {"read", "write", "delete"}}

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

// bundle is the repository's permatrix entrypoints and library with the
// demo system; extraActions are more catalog actions (JSON members).
func bundle(t testing.TB, viewer, extraActions string) *opa.Bundle {
	t.Helper()
	fsys := fstest.MapFS{}
	err := fs.WalkDir(permatrix.DefaultBundle, "policies/permatrix", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(permatrix.DefaultBundle, p)
		fsys[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	fsys["policies/demo/demo.rego"] = &fstest.MapFile{Data: []byte(demoPolicy(viewer))}
	fsys["systems/demo/data.json"] = &fstest.MapFile{Data: fmt.Appendf(nil, demoCatalog, extraActions)}
	b, err := opa.ReadLayout(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assignments: alice views everything, bob edits project p1.
const export = `{"store": {"revision": 7, "grants": {
  "user:alice": {"demo": {"role": {"viewer": {"service": {"kind": "role", "role": "viewer", "scope": {"type": "service"}, "via": "user:alice", "assignment": "a1"}}}}},
  "user:bob": {"demo": {"role": {"editor": {"project:p1": {"kind": "role", "role": "editor", "scope": {"type": "project", "id": "p1"}, "via": "user:bob", "assignment": "a2"}}}}}
}, "memberships": {}, "roles": {}, "projects": {}}}`

func currentStore(t *testing.T) replay.Store {
	t.Helper()
	m, err := store.ReadDocument(strings.NewReader(export))
	if err != nil {
		t.Fatal(err)
	}
	return replay.Store{Backend: m, Description: "test export"}
}

// line is one decision as serve --decision-log writes it (OPA's schema).
func line(id, input string, allow bool, bundleRev string, storeRev int) string {
	return fmt.Sprintf(`{"decision_id":%q,"labels":{"id":"x","version":"1.22.2"},"bundles":{"permatrix":{"revision":%q}},`+
		`"path":"permatrix/decision","input":%s,"result":{"allow":%v,"reasons":[],"missing":[],"revision":%d},`+
		`"timestamp":"2026-01-02T03:04:05Z","custom":{"store_revision":%d}}`, id, bundleRev, input, allow, storeRev, storeRev)
}

func check(subject, action, project string) string {
	if project == "" {
		return fmt.Sprintf(`{"subject":%q,"system":"demo","action":%q}`, subject, action)
	}
	return fmt.Sprintf(`{"subject":%q,"system":"demo","action":%q,"resource":{"type":"project","id":%q}}`, subject, action, project)
}

// logged is a decision log as the current policies (viewer reads) wrote it.
func logged(t *testing.T) []decisionlog.Entry {
	t.Helper()
	log := strings.Join([]string{
		line("d1", check("alice", "read", ""), true, "r1", 5),
		line("d2", check("alice", "write", ""), false, "r1", 5),
		line("d3", check("alice", "read", "p1"), true, "r2", 6),
		line("d4", check("bob", "write", "p1"), true, "r2", 7),
		line("d5", check("bob", "read", "p2"), false, "r2", 3),
		line("d6", check("carol", "read", ""), false, "r2", 7),
		"",
		// Not checks: another path, a query, a check path with no input,
		// and the Data API's evaluation of the decision with an input that
		// is no check.
		`{"decision_id":"q1","path":"permatrix/allow","input":{"subject":"alice"},"result":true,"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"decision_id":"q2","query":"data.permatrix.decision","result":[],"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"decision_id":"q3","path":"permatrix/decision","result":{"allow":false},"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"decision_id":"q4","path":"permatrix/decision","input":"alice","result":{"allow":false},"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"decision_id":"q5","path":"permatrix/decision","input":{"subject":["alice"]},"result":{"allow":false},"timestamp":"2026-01-02T03:04:05Z"}`,
	}, "\n")
	entries, err := decisionlog.Read(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func run(t *testing.T, entries []decisionlog.Entry, o replay.Options) *replay.Report {
	t.Helper()
	if o.Store.Backend == nil {
		o.Store = currentStore(t)
	}
	rep, err := replay.Run(context.Background(), entries, o)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestUnchangedPoliciesFlipNothing(t *testing.T) {
	b := bundle(t, `{"read"}`, "")
	rep := run(t, logged(t), replay.Options{Candidate: b})
	if rep.Decisions != 6 || rep.Skipped != 5 || rep.Flips != 0 || len(rep.Groups) != 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.CandidateRevision != b.Revision() || rep.BaselineRevision != "" {
		t.Errorf("revisions: candidate %q (want %q), baseline %q", rep.CandidateRevision, b.Revision(), rep.BaselineRevision)
	}
	if strings.Join(rep.LoggedRevisions, ",") != "r1,r2" || rep.LoggedStore != [2]uint64{3, 7} {
		t.Errorf("logged bundles %v, store revisions %v", rep.LoggedRevisions, rep.LoggedStore)
	}
	if rep.Store != "test export" || rep.StoreRevision != 7 {
		t.Errorf("store %q at %d", rep.Store, rep.StoreRevision)
	}
}

func TestFlipsCountedAndGrouped(t *testing.T) {
	// The viewer loses read; editors keep write.
	rep := run(t, logged(t), replay.Options{Candidate: bundle(t, `set()`, "")})
	if rep.Decisions != 6 || rep.Flips != 2 || len(rep.Groups) != 1 {
		t.Fatalf("report %+v", rep)
	}
	g := rep.Groups[0]
	if g.System != "demo" || g.Action != "read" || g.Flips != 2 || g.AllowToDeny != 2 || g.DenyToAllow != 0 || g.Invalid != 0 {
		t.Fatalf("group %+v", g)
	}
	if len(g.Examples) != 2 || g.Examples[0].DecisionID != "d1" || g.Examples[1].DecisionID != "d3" {
		t.Fatalf("examples %+v", g.Examples)
	}
	f := g.Examples[1]
	if f.Subject != "alice" || !f.Was || f.Now || f.Resource != (permatrix.Scope{Type: "project", ID: "p1"}) || len(f.Missing) == 0 || len(f.Reasons) != 0 {
		t.Fatalf("flip %+v", f)
	}
	if r := g.Examples[0].Resource; r != permatrix.ServiceScope {
		t.Errorf("a check without a resource flips on %+v, want the service scope", r)
	}

	// The viewer may now write too: d2 flips deny → allow; groups are
	// ordered by their number of flips.
	rep = run(t, logged(t), replay.Options{Candidate: bundle(t, `{"write"}`, "")})
	if rep.Flips != 3 || len(rep.Groups) != 2 || rep.Groups[0].Action != "read" || rep.Groups[1].Action != "write" ||
		rep.Groups[1].DenyToAllow != 1 || rep.Groups[1].Examples[0].DecisionID != "d2" || len(rep.Groups[1].Examples[0].Reasons) == 0 {
		t.Fatalf("report %+v", rep)
	}
}

// A candidate that no longer knows an action refuses the logged input:
// that is a flip of its own kind.
func TestInvalidUnderTheCandidate(t *testing.T) {
	entries, err := decisionlog.Read(strings.NewReader(line("e1", check("bob", "delete", "p1"), true, "r3", 7)))
	if err != nil {
		t.Fatal(err)
	}
	// Logged when the catalog had "delete"; the candidate's catalog lacks it.
	rep := run(t, entries, replay.Options{Candidate: bundle(t, `{"read"}`, "")})
	if rep.Flips != 1 || len(rep.Groups) != 1 || rep.Groups[0].Invalid != 1 {
		t.Fatalf("report %+v", rep)
	}
	if f := rep.Groups[0].Examples[0]; !strings.Contains(f.Invalid, `unknown action "delete"`) || f.Now {
		t.Fatalf("flip %+v", f)
	}
	// With the action, the same entry does not flip.
	if rep := run(t, entries, replay.Options{Candidate: bundle(t, `{"read"}`, `, "delete": {"scopes": ["service", "project"]}`)}); rep.Flips != 0 {
		t.Fatalf("report %+v", rep)
	}
}

// An input the logged decision already refused (the Data API evaluates
// data.permatrix.decision with any input, and logs it on the check's path)
// and that the candidate refuses too did not change: no flip.
func TestStillInvalidIsNoFlip(t *testing.T) {
	log := strings.Join([]string{
		`{"decision_id":"i1","path":"permatrix/decision","input":{"Subject":"alice","system":"demo","action":"read"},` +
			`"result":{"allow":false,"reasons":[],"missing":[],"revision":7,"errors":["subject must be a non-empty string"]},"timestamp":"2026-01-02T03:04:05Z"}`,
		`{"decision_id":"i2","path":"permatrix/decision","input":{"subject":"alice","system":"nope","action":"read"},` +
			`"result":{"allow":false,"reasons":[],"missing":[],"revision":7,"errors":["unknown system \"nope\""]},"timestamp":"2026-01-02T03:04:05Z"}`,
	}, "\n")
	entries, err := decisionlog.Read(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	b := bundle(t, `{"read"}`, "")
	for name, o := range map[string]replay.Options{"against the log": {Candidate: b}, "against a baseline": {Candidate: b, Baseline: b}} {
		rep := run(t, entries, o)
		if rep.Decisions != 2 || rep.Flips != 0 {
			t.Errorf("%s: report %+v", name, rep)
		}
	}
}

// With a baseline, the store's changes since the log was written do not
// show as flips: only where candidate and baseline disagree.
func TestBaseline(t *testing.T) {
	// Logged when carol could read (her grant is gone since) and alice
	// could not write.
	log := strings.Join([]string{
		line("b1", check("carol", "read", ""), true, "r1", 2),
		line("b2", check("alice", "write", ""), false, "r1", 2),
	}, "\n")
	entries, err := decisionlog.Read(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	current, candidate := bundle(t, `{"read"}`, ""), bundle(t, `{"read", "write"}`, "")
	rep := run(t, entries, replay.Options{Candidate: candidate})
	if rep.Flips != 2 {
		t.Fatalf("against the log: %+v", rep)
	}
	rep = run(t, entries, replay.Options{Candidate: candidate, Baseline: current})
	if rep.Flips != 1 || rep.Groups[0].Action != "write" || rep.Groups[0].DenyToAllow != 1 || rep.BaselineRevision != current.Revision() {
		t.Fatalf("against the baseline: %+v", rep)
	}
}

func TestExamplesBounded(t *testing.T) {
	var lines []string
	for i := range replay.MaxExamples + 5 {
		lines = append(lines, line(fmt.Sprintf("m%d", i), check("alice", "read", ""), true, "r1", 7))
	}
	entries, err := decisionlog.Read(strings.NewReader(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, entries, replay.Options{Candidate: bundle(t, `set()`, "")})
	if rep.Flips != replay.MaxExamples+5 || rep.Groups[0].Flips != replay.MaxExamples+5 || len(rep.Groups[0].Examples) != replay.MaxExamples {
		t.Fatalf("flips %d, group %d, examples %d", rep.Flips, rep.Groups[0].Flips, len(rep.Groups[0].Examples))
	}
}

func TestRunErrors(t *testing.T) {
	good := bundle(t, `{"read"}`, "")
	// A logged check whose result has no boolean allow: say which.
	entries, err := decisionlog.Read(strings.NewReader(
		`{"decision_id":"x1","path":"permatrix/decision","input":{"subject":"alice","system":"demo","action":"read"},"result":{"allow":"yes"}}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = replay.Run(context.Background(), entries, replay.Options{Candidate: good, Store: currentStore(t)})
	if err == nil || !strings.Contains(err.Error(), "decision x1: the logged result has no boolean allow") {
		t.Fatalf("a result without allow: %v", err)
	}
	// ... unless a baseline decides what it was.
	if rep := run(t, entries, replay.Options{Candidate: good, Baseline: good}); rep.Decisions != 1 || rep.Flips != 0 {
		t.Fatalf("with a baseline: %+v", rep)
	}

	// A candidate that does not compile is named as the candidate.
	broken := bundle(t, `{count(1)}`, "") // reads, but does not type-check
	_, err = replay.Run(context.Background(), logged(t), replay.Options{Candidate: broken, Store: currentStore(t)})
	if err == nil || !strings.HasPrefix(err.Error(), "candidate bundle: ") {
		t.Fatalf("a broken candidate: %v", err)
	}
	_, err = replay.Run(context.Background(), logged(t), replay.Options{Candidate: good, Baseline: broken, Store: currentStore(t)})
	if err == nil || !strings.HasPrefix(err.Error(), "baseline bundle: ") {
		t.Fatalf("a broken baseline: %v", err)
	}
	// A canceled replay stops with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := replay.Run(ctx, logged(t), replay.Options{Candidate: good, Store: currentStore(t)}); err == nil {
		t.Fatal("a canceled replay succeeded")
	}
}

// Damaged log lines stop the read with the line's number; nothing panics.
func TestMalformedLines(t *testing.T) {
	good := line("d1", check("alice", "read", ""), true, "r1", 5)
	for name, c := range map[string]struct{ log, msg string }{
		"truncated":        {good + "\n" + good[:len(good)/2] + "\n", `line 2: jsontext: unexpected EOF within "/input"`},
		"not JSON":         {"\n\n" + "decision d1 allowed\n", "line 3: jsontext: invalid character 'd' at start of value"},
		"an array":         {"[1,2]\n", "line 1: a logged decision is a JSON object, not an array"},
		"wrong type":       {`{"decision_id": 5}`, `line 1: json: cannot unmarshal JSON number into Go string within "/decision_id"`},
		"bad timestamp":    {`{"decision_id":"x","timestamp":"yesterday"}`, `line 1: json: cannot unmarshal JSON string into Go time.Time within "/timestamp"`},
		"duplicate input":  {`{"decision_id":"x","path":"permatrix/decision","input":{"subject":"alice"},"input":{"subject":"root"}}`, `line 1: jsontext: duplicate object member name "input"`},
		"nested duplicate": {`{"decision_id":"x","path":"permatrix/decision","input":{"subject":"alice","subject":"root"}}`, `line 1: jsontext: duplicate object member name "subject" within "/input"`},
		"duplicate id":     {good + "\n" + `{"decision_id":"a","decision_id":"b"}`, `line 2: jsontext: duplicate object member name "decision_id"`},
		"invalid UTF-8":    {`{"decision_id":"` + "\xff" + `"}`, "line 1: jsontext: invalid UTF-8"},
		"a string":         {`"decision"`, "line 1: a logged decision is a JSON object, not a string"},
		"two values":       {`{"decision_id":"a"} {"decision_id":"b"}`, "line 1: jsontext: invalid character '{' after top-level value"},
	} {
		entries, err := decisionlog.Read(strings.NewReader(c.log))
		// JSON v2 words a type error "cannot unmarshal" or "unable to
		// unmarshal", chosen at random once per process (on purpose:
		// go-json-experiment's errorModalVerb), so either is the message.
		if err == nil || !strings.Contains(strings.Replace(err.Error(), "unable to", "cannot", 1), c.msg) {
			t.Errorf("%s: %v (%d entries), want %q", name, err, len(entries), c.msg)
		}
	}
}

// A line over decisionlog.MaxLine is refused by number, without reading
// the rest of it into memory.
func TestHugeLine(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 64 MiB")
	}
	good := line("d1", check("alice", "read", ""), true, "r1", 5) + "\n"
	r := io.MultiReader(strings.NewReader(good), strings.NewReader(`{"decision_id":"`), &endless{}, strings.NewReader("\"}\n"))
	_, err := decisionlog.Read(r)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("line 2 is over %d bytes", decisionlog.MaxLine)) {
		t.Fatalf("a huge line: %v", err)
	}
}

// endless is a reader of 'x' bytes that stops after twice MaxLine.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	if e.n >= 2*decisionlog.MaxLine {
		return 0, io.EOF
	}
	n := min(len(p), 2*decisionlog.MaxLine-e.n)
	for i := range n {
		p[i] = 'x'
	}
	e.n += n
	return n, nil
}

// FuzzReplay: any log line read and replayed never panics; a replay that
// succeeds accounts for every entry.
func FuzzReplay(f *testing.F) {
	f.Add(line("d1", check("alice", "read", ""), true, "r1", 5))
	f.Add(line("d2", check("bob", "write", "p1"), false, "r1", 5))
	f.Add(`{"path":"permatrix/decision","input":{"subject":"alice","system":"demo","action":"read","resource":{"type":"service","id":"x"}},"result":{"allow":true}}`)
	f.Add(`{"path":"permatrix/decision","input":{"subject":"alice","system":"demo","action":"read","context":{"a":[1,2,{"b":null}]},"groups":["g"]},"result":{"allow":false}}`)
	f.Add(`{"path":"permatrix/decision","input":{"subject":"","system":"","action":""},"result":{"allow":false,"errors":["x"]}}`)
	f.Add(`{"path":"permatrix/decision","input":{"subject":"alice","system":"demo","action":"read","min_revision":99999999},"result":{"allow":true}}`)
	f.Add(`{"store_revision":3,"bundle_revision":"old","duration_ns":5,"path":"permatrix/decision","input":{},"result":{"allow":true}}`)
	f.Add(`{"path":"permatrix/decision","input":{"subject":"alice","system":"demo","action":"read","resource":{"type":"project"}},"result":{"allow":true}}`)
	candidate := bundle(f, `set()`, "")
	backend := func() store.Backend {
		m, err := store.ReadDocument(strings.NewReader(export))
		if err != nil {
			f.Fatal(err)
		}
		return m
	}()
	f.Fuzz(func(t *testing.T, s string) {
		entries, err := decisionlog.Read(strings.NewReader(s))
		if err != nil {
			return
		}
		rep, err := replay.Run(context.Background(), entries, replay.Options{Candidate: candidate, Store: replay.Store{Backend: backend}})
		if err != nil {
			return
		}
		if rep.Decisions+rep.Skipped != len(entries) || rep.Flips > rep.Decisions {
			t.Fatalf("%d entries: %d decided, %d skipped, %d flips", len(entries), rep.Decisions, rep.Skipped, rep.Flips)
		}
		n := 0
		for _, g := range rep.Groups {
			n += g.Flips
			if g.AllowToDeny+g.DenyToAllow+g.Invalid != g.Flips {
				t.Fatalf("group %+v does not add up", g)
			}
		}
		if n != rep.Flips {
			t.Fatalf("groups hold %d flips, the report %d", n, rep.Flips)
		}
	})
}
