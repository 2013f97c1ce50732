package console_test

import (
	"bytes"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/permatrix/permatrix/internal/matrix"
	"github.com/permatrix/permatrix/test/harness"
)

// gridCell is a cell as the matrix page shows it.
type gridCell struct {
	Holder, Action, Scope string
	Allow                 string // data-allow
	Text                  string // what the cell reads
}

const readGrid = `[...document.querySelectorAll('#matrix-grid td[data-action]')].map((td) => ({
  Holder: td.dataset.holder, Action: td.dataset.action, Scope: td.dataset.scope,
  Allow: td.dataset.allow, Text: td.querySelector('a').textContent }))`

// TestMatrixMatchesCLI: for every system and every scope type, the grid
// the matrix page shows is exactly `permatrix matrix SYSTEM --format json`:
// the same cells, each reading yes or no as the CLI decides, and nothing
// else (a cell the CLI does not check is not a link).
func TestMatrixMatchesCLI(t *testing.T) {
	tb := newTab(t)
	r := tb.srv.Do(http.MethodGet, "/v1/systems", nil, false)
	systems, _ := r.Body["systems"].([]any)
	if len(systems) < 7 {
		t.Fatalf("want the 7 systems, got %d", len(systems))
	}
	tb.open("matrix")
	for _, s := range systems {
		system := s.(map[string]any)["id"].(string)
		out, err := exec.Command(bin, "matrix", system, "--format", "json").Output()
		if err != nil {
			t.Fatalf("permatrix matrix %s: %v", system, err)
		}
		var want matrix.Matrix
		if err := json.Unmarshal(out, &want); err != nil {
			t.Fatal(err)
		}
		for _, scope := range want.Scopes {
			tb.goTo("matrix?system=" + system + "&scope=" + scope)
			tb.waitFor(`document.querySelector('#matrix-grid[data-system="` + system + `"][data-scope="` + scope + `"]')`)
			if rev := tb.text("#matrix-revision"); rev != want.BundleRevision {
				t.Errorf("%s: the page shows bundle %q, the CLI %q", system, rev, want.BundleRevision)
			}
			var got []gridCell
			tb.evalInto(readGrid, &got)
			wantCells := map[[3]string]bool{}
			for _, c := range want.Cells {
				if c.Scope == scope {
					wantCells[[3]string{c.Role, c.Action, c.Scope}] = c.Allow
				}
			}
			if len(got) != len(wantCells) {
				t.Errorf("%s at %s: the page shows %d cells, the CLI decides %d", system, scope, len(got), len(wantCells))
			}
			for _, c := range got {
				allow, ok := wantCells[[3]string{c.Holder, c.Action, c.Scope}]
				mark := map[bool]string{true: "yes", false: "no"}[allow]
				switch {
				case !ok:
					t.Errorf("%s: the page shows %s × %s at %s, which the CLI does not check", system, c.Holder, c.Action, c.Scope)
				case c.Allow != map[bool]string{true: "true", false: "false"}[allow] || c.Text != mark:
					t.Errorf("%s: %s × %s at %s reads %q (allow=%s); the CLI decides %s", system, c.Holder, c.Action, c.Scope, c.Text, c.Allow, mark)
				}
			}
		}
	}
}

// TestAssignmentFlipsCheck: a check that is denied, an assignment added
// through the Assignments form, and the same check on the Check page is
// allowed, for the reason of that assignment.
func TestAssignmentFlipsCheck(t *testing.T) {
	tb := newTab(t)
	checkRoute := "check?system=celonis-task-mining&action=edit_users&resource_type=project&resource_id=p1&subject=alice"
	tb.open(checkRoute)
	tb.click("#check-submit")
	tb.waitFor(`document.getElementById('check-verdict')`)
	if v := tb.text("#check-verdict"); v != "DENY" {
		t.Fatalf("before the assignment: %s, want DENY", v)
	}

	tb.setToken()
	tb.goTo("assignments")
	tb.choose("#add-subject-kind", "user")
	tb.typeInto("#add-subject-id", "alice")
	tb.choose("#add-system", "celonis-task-mining")
	tb.choose("#add-grant-kind", "permission")
	tb.typeInto("#add-name", "edit_users")
	tb.choose("#add-scope-type", "project")
	tb.typeInto("#add-scope-id", "p1")
	tb.click("#add-submit")
	tb.waitFor(`document.querySelector('#assignments-status [data-outcome]')`)
	if o := tb.text("#assignments-status"); !strings.Contains(o, "done") {
		t.Fatalf("adding the assignment: %q", o)
	}
	// The list shows it (the form refreshed it).
	tb.waitFor(`[...document.querySelectorAll('#assignment-table td')].some((td) => td.textContent === 'user:alice')`)

	tb.goTo(checkRoute)
	tb.click("#check-submit")
	tb.waitFor(`document.getElementById('check-verdict')`)
	if v := tb.text("#check-verdict"); v != "ALLOW" {
		t.Fatalf("after the assignment: %s, want ALLOW", v)
	}
	if r := tb.text("#check-result .reasons"); !strings.Contains(r, "edit_users") || !strings.Contains(r, "user:alice") {
		t.Errorf("the reasons do not name the assignment: %q", r)
	}
}

// TestRefusedDelegatedWrite: acting as a business analyst, assigning
// recording_user (footnote **: an analyst assigns only business_analyst)
// is refused, the page shows the rule's message — the same the API gives
// — and nothing is stored.
func TestRefusedDelegatedWrite(t *testing.T) {
	tb := newTab(t)
	srv := tb.srv
	if r := srv.Do(http.MethodPut, "/v1/systems/uipath-task-mining-cloud/projects/p1", map[string]any{"created_by": "owner"}, true); r.Status != http.StatusOK {
		t.Fatalf("registering p1: %d %s", r.Status, r.Raw)
	}
	srv.Assign(map[string]any{"subject": "user:bob", "system": "uipath-task-mining-cloud", "role": "business_analyst", "scope": map[string]any{"type": "project", "id": "p1"}})
	write := map[string]any{"subject": "user:carol", "system": "uipath-task-mining-cloud", "role": "recording_user",
		"scope": map[string]any{"type": "project", "id": "p1"}, "actor": "bob"}
	want := apiMessage(t, srv, http.MethodPost, "/v1/assignments", write, http.StatusForbidden)

	tb.open("overview")
	tb.setToken()
	tb.goTo("assignments")
	tb.typeInto("#actor", "bob")
	tb.choose("#add-subject-kind", "user")
	tb.typeInto("#add-subject-id", "carol")
	tb.choose("#add-system", "uipath-task-mining-cloud")
	tb.choose("#add-grant-kind", "role")
	tb.typeInto("#add-name", "recording_user")
	tb.choose("#add-scope-type", "project")
	tb.typeInto("#add-scope-id", "p1")
	tb.click("#add-submit")
	tb.waitFor(`document.querySelector('#assignments-status [data-outcome]')`)
	if o := tb.text(`#assignments-status [data-outcome]`); !strings.Contains(o, "refused (acting as bob)") {
		t.Errorf("the outcome reads %q", o)
	}
	if got := tb.text("#assignments-status .error .message"); got != want {
		t.Errorf("the page shows %q; the API's message is %q", got, want)
	}
	if s := tb.text("#assignments-status .error strong"); s != "403 forbidden" {
		t.Errorf("status shown: %q", s)
	}
	if r := srv.Do(http.MethodGet, "/v1/assignments?subject=user:carol", nil, true); len(r.Body["assignments"].([]any)) != 0 {
		t.Errorf("the refused write stored something: %s", r.Raw)
	}
}

// controls lists the page's controls — every link, button, field and
// summary that is shown and enabled, whatever its tabindex (and any other
// element made tabbable), but the matrix grid's cells other than its one
// tab stop (the arrow keys reach those) — and tags each with data-kbd.
const controls = `(() => {
  const native = 'a[href], button, input, select, textarea, summary';
  const els = [...document.querySelectorAll(native + ', [tabindex]')].filter((el) => !el.disabled &&
    (el.matches(native) || el.tabIndex >= 0) &&
    el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden' &&
    !(el.closest('#matrix-grid') && el.tabIndex < 0));
  els.forEach((el, i) => { el.dataset.kbd = String(i); });
  return els.map((el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + (el.getAttribute('aria-label') || el.textContent || el.name || '').trim().slice(0, 30));
})()`

// TestKeyboardReachesEveryControl: on every page, Tab reaches every
// control, in a cycle from the top; in the matrix grid (one tab stop) the
// arrow keys reach every cell, and Enter explains the focused one.
func TestKeyboardReachesEveryControl(t *testing.T) {
	tb := newTab(t)
	srv := tb.srv
	srv.Assign(map[string]any{"subject": "user:alice", "system": "celonis-task-mining", "role": "analyst", "scope": map[string]any{"type": "service"}})
	srv.Assign(map[string]any{"subject": "group:eng", "system": "celonis-task-mining", "permission": "edit_users", "scope": map[string]any{"type": "project", "id": "p1"}})
	if r := srv.Do(http.MethodPut, "/v1/groups/eng/members/alice", nil, true); r.Status != http.StatusOK {
		t.Fatalf("membership: %d %s", r.Status, r.Raw)
	}
	tb.open("overview")
	tb.setToken()
	for _, route := range []string{
		"overview",
		"matrix?system=uipath-task-mining-cloud&scope=project&holder=project_admin&action=manage_access",
		"subject?user=alice&scope_type=project&scope_id=p1",
		"check?system=celonis-task-mining&action=create_project&subject=alice",
		"assignments?group=eng",
		"document?name=celonis-task-mining-permissions.txt&line=16",
	} {
		t.Run(strings.SplitN(route, "?", 2)[0], func(t *testing.T) {
			tb := &tab{t: t, ctx: tb.ctx, srv: srv}
			tb.goTo(route)
			if strings.HasPrefix(route, "check") {
				tb.click("#check-submit") // the result adds no controls, but shows the page complete
				tb.waitFor(`document.getElementById('check-verdict')`)
			}
			if strings.HasPrefix(route, "matrix") {
				tb.waitFor(`document.querySelector('#cell-panel[data-cell]')`)
			}
			if strings.HasPrefix(route, "assignments") {
				tb.waitFor(`document.querySelector('#assignment-table') && document.querySelector('#member-list li')`)
			}
			var names []string
			tb.evalInto(controls, &names)
			if len(names) < 8 {
				t.Fatalf("only %d controls found: %v", len(names), names)
			}
			tb.eval(`document.activeElement && document.activeElement.blur(); window.getSelection().removeAllRanges(); true`)
			reached := map[string]bool{}
			for range len(names) + 3 {
				if err := chromedp.Do(tb.ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
					t.Fatal(err)
				}
				var k string
				tb.evalInto(`(document.activeElement && document.activeElement.dataset.kbd) || ''`, &k)
				reached[k] = true
			}
			for i, n := range names {
				if !reached[jsIndex(i)] {
					t.Errorf("Tab never reaches control %d: %s", i, n)
				}
			}
			if strings.HasPrefix(route, "matrix") {
				arrowsReachEveryCell(t, tb)
			}
		})
	}
}

func jsIndex(i int) string { b, _ := json.Marshal(i); return string(b) }

// arrowsReachEveryCell walks the grid row by row with the arrow keys and
// checks that every decided cell was focused, then opens one with Enter.
func arrowsReachEveryCell(t *testing.T, tb *tab) {
	t.Helper()
	var all []string
	tb.evalInto(`[...document.querySelectorAll('#matrix-grid td[data-action]')].map((td) => td.dataset.holder + ' ' + td.dataset.action)`, &all)
	var rows int
	tb.evalInto(`document.querySelector('#matrix-grid tbody').rows.length`, &rows)
	tb.eval(`document.querySelector('#matrix-grid a[tabindex="0"]').focus(); true`)
	focused := func() string {
		var s string
		tb.evalInto(`(() => { const td = document.activeElement.closest('td'); return td && td.dataset.action ? td.dataset.holder + ' ' + td.dataset.action : '' })()`, &s)
		return s
	}
	key := func(k string, mods ...chromedp.Modifier) {
		if err := chromedp.Do(tb.ctx, chromedp.KeyEvent(k, chromedp.KeyModifiers(mods...))); err != nil {
			t.Fatal(err)
		}
	}
	reached := map[string]bool{}
	key(kb.Home, chromedp.ModifierCtrl)
	for r := range rows {
		key(kb.Home)
		prev := ""
		for cur := focused(); cur != prev; cur = focused() {
			reached[cur] = true
			prev = cur
			key(kb.ArrowRight)
		}
		if r < rows-1 {
			key(kb.ArrowDown)
		}
	}
	for _, c := range all {
		if !reached[c] {
			t.Errorf("the arrow keys never reach cell %s", c)
		}
	}
	// Enter on the focused cell explains it.
	cell := focused()
	key(kb.Enter)
	tb.waitFor(`(document.querySelector('#cell-panel').dataset.cell || '').startsWith(` + jsString(cell+" ") + `)`)
}

// TestStoredIDsAreText: ids and messages from the server are shown as the
// characters they are — markup in a stored user or group id, or echoed in
// an error message, builds no element and runs nothing.
func TestStoredIDsAreText(t *testing.T) {
	tb := newTab(t)
	srv := tb.srv
	hostile := `<img src=x onerror="window.__xss=1">`
	group := `g"><svg onload="window.__xss=2">`
	srv.Assign(map[string]any{"subject": "user:" + hostile, "system": "celonis-task-mining", "role": "analyst", "scope": map[string]any{"type": "service"}})
	srv.Assign(map[string]any{"subject": "group:" + group, "system": "celonis-task-mining", "permission": "edit_users", "scope": map[string]any{"type": "service"}})
	if r := srv.Do(http.MethodPut, "/v1/groups/"+urlPath(group)+"/members/"+urlPath(hostile), nil, true); r.Status != http.StatusOK {
		t.Fatalf("membership: %d %s", r.Status, r.Raw)
	}
	tb.open("overview")
	tb.setToken()
	tb.goTo("subject?user=" + urlQuery(hostile))
	tb.waitFor(`document.querySelector('#subject-assignment-table') && document.querySelector('#subject-permission-table')`)
	tb.goTo("assignments")
	tb.waitFor(`document.querySelector('#assignment-table')`)
	if !strings.Contains(tb.text("#assignment-table"), "user:"+hostile) {
		t.Errorf("the list does not show the id as text: %q", tb.text("#assignment-table"))
	}
	// An error message that echoes input: an unknown role named with markup.
	tb.choose("#add-system", "celonis-task-mining")
	tb.typeInto("#add-subject-id", "dave")
	tb.typeInto("#add-name", "<b id=injected>x</b>")
	tb.click("#add-submit")
	tb.waitFor(`document.querySelector('#assignments-status .error')`)
	if m := tb.text("#assignments-status .error .message"); !strings.Contains(m, "<b id=injected>x</b>") {
		t.Errorf("the error message does not show the input as text: %q", m)
	}
	var found struct {
		XSS      any
		Elements int
	}
	tb.evalInto(`({XSS: window.__xss ?? null, Elements: document.querySelectorAll('main img, main svg svg, #injected, [onerror], [onload]').length})`, &found)
	if found.XSS != nil || found.Elements != 0 {
		t.Errorf("stored markup became page content: %+v", found)
	}
	// And the Trusted Types policy stops an HTML sink outright (the
	// violation it reports is this test's, not the page's: taken back).
	var refused struct {
		Threw      bool
		Violations []string
	}
	tb.evalInto(`(() => {
	  const before = window.__problems.length;
	  let threw = false;
	  try { document.createElement('div').innerHTML = '<b>x</b>' } catch (e) { threw = e instanceof TypeError }
	  return new Promise((resolve) => setTimeout(() => resolve({Threw: threw, Violations: window.__problems.splice(before)}), 50));
	})()`, &refused)
	if !refused.Threw || len(refused.Violations) != 1 || !strings.Contains(refused.Violations[0], "trusted-types") {
		t.Errorf("innerHTML with a string: %+v; want a TypeError and one Trusted Types violation", refused)
	}
}

// TestTokenStaysOutOfURLs: the admin token goes only into the
// Authorization header of the calls that need it — never a URL, a cookie
// or localStorage — and the calls that need none (checks, the matrix,
// metrics) go without it.
func TestTokenStaysOutOfURLs(t *testing.T) {
	tb := newTab(t)
	srv := tb.srv
	srv.Assign(map[string]any{"subject": "user:alice", "system": "celonis-task-mining", "role": "analyst", "scope": map[string]any{"type": "service"}})
	requests := chromedp.Events(tb.ctx, network.RequestWillBeSent)
	tb.open("overview")
	tb.setToken()
	tb.goTo("subject?user=alice")
	tb.waitFor(`document.querySelector('#subject-assignment-table')`)
	tb.goTo("assignments")
	tb.waitFor(`document.querySelector('#assignment-table')`)
	tb.goTo("check?system=celonis-task-mining&action=edit_users&subject=alice")
	tb.click("#check-submit")
	tb.waitFor(`document.getElementById('check-verdict')`)
	tb.goTo("matrix?system=celonis-studio")
	tb.waitFor(`document.querySelector('#matrix-grid')`)
	tb.eval(`fetch('/ui/end-of-test').catch(() => {}); true`) // a marker: the last request to read

	withToken, without := map[string]bool{}, map[string]bool{}
	for ev, err := range requests {
		if err != nil {
			t.Fatal(err)
		}
		u := ev.Request.URL
		if strings.Contains(u, harness.Token) {
			t.Errorf("the token is in a URL: %s", u)
		}
		path := strings.TrimPrefix(u, srv.URL)
		path, _, _ = strings.Cut(path, "?")
		auth, _ := ev.Request.Headers["Authorization"].(string)
		switch {
		case auth == "Bearer "+harness.Token:
			withToken[ev.Request.Method+" "+path] = true
		case auth != "":
			t.Errorf("%s carries Authorization %q", u, auth)
		default:
			without[ev.Request.Method+" "+path] = true
		}
		if path == "/ui/end-of-test" {
			break
		}
	}
	for _, p := range []string{"GET /v1/assignments", "GET /v1/data/store/memberships/alice"} {
		if !withToken[p] {
			t.Errorf("%s was not sent with the token (sent with it: %v)", p, withToken)
		}
	}
	for p := range withToken {
		if !strings.HasPrefix(p, "GET /v1/assignments") && !strings.HasPrefix(p, "GET /v1/data/store/") && !strings.HasPrefix(p, "GET /v1/groups/") {
			t.Errorf("%s was sent with the token, which it does not need", p)
		}
	}
	for _, p := range []string{"POST /v1/check", "GET /v1/systems", "GET /v1/matrix/celonis-studio", "GET /metrics"} {
		if !without[p] {
			t.Errorf("%s was not sent (without a token); sent: %v", p, without)
		}
	}
	var store struct {
		Session, Local, Cookie, Href string
	}
	tb.evalInto(`({Session: sessionStorage.getItem('permatrix.adminToken') || '', Local: JSON.stringify(localStorage), Cookie: document.cookie, Href: location.href})`, &store)
	if store.Session != harness.Token || strings.Contains(store.Local+store.Cookie+store.Href, harness.Token) {
		t.Errorf("the token is kept wrong: %+v", store)
	}
	// Forget removes it.
	tb.click("#token-forget")
	tb.waitFor(`sessionStorage.getItem('permatrix.adminToken') === null && document.getElementById('token-state').textContent === 'token forgotten'`)
	tb.ready()
}

// TestOverviewShowsMetrics: the overview reads the server's own metrics:
// the allow/deny split and latency of the checks made, a rate once
// decisions keep coming, and the store revision from /health.
func TestOverviewShowsMetrics(t *testing.T) {
	tb := newTab(t)
	srv := tb.srv
	srv.Assign(map[string]any{"subject": "user:alice", "system": "celonis-task-mining", "role": "admin", "scope": map[string]any{"type": "service"}})
	check := func(user string) {
		srv.Check(map[string]any{"subject": user, "system": "celonis-task-mining", "action": "edit_users"})
	}
	check("alice")
	check("alice")
	check("bob")
	check("bob")
	check("bob")
	tb.open("overview")
	tb.waitFor(`document.getElementById('overview-split-figures')`)
	if got := tb.text("#overview-split-figures"); got != "2 allowed · 3 denied" {
		t.Errorf("split: %q", got)
	}
	if got := tb.text(`#overview-health-list dd[data-key="store revision"]`); got != jsIndex(int(srv.Svc.Revision())) {
		t.Errorf("store revision shown %q, the store is at %d", got, srv.Svc.Revision())
	}
	var rects int
	tb.evalInto(`document.querySelectorAll('#chart-split rect').length`, &rects)
	if rects != 2 {
		t.Errorf("the split chart has %d bars, want 2", rects)
	}
	if got := tb.text("#overview-latency-figures"); strings.Contains(got, "p50 —") {
		t.Errorf("no latency from the histogram: %q", got)
	}
	var bars int
	tb.evalInto(`document.querySelectorAll('#chart-latency rect').length`, &bars)
	if bars < 5 {
		t.Errorf("the latency chart has %d bars", bars)
	}
	// Decisions keep coming: the rate shows them.
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 60 {
			srv.Client.Post(srv.URL+"/v1/check", "application/json", strings.NewReader(`{"subject":"bob","system":"celonis-task-mining","action":"edit_users"}`))
		}
	}()
	tb.waitFor(`parseFloat(document.getElementById('overview-rate-now').textContent) > 0 && document.querySelector('#chart-rate polyline')`)
	<-done
}

// TestCellExplanation: a cell explains itself — the rules that decided it
// and the vendor passages they cite — and a citation opens the document at
// the cited line, which is the document's own text.
func TestCellExplanation(t *testing.T) {
	tb := newTab(t)
	tb.open("matrix?system=celonis-task-mining&scope=bucket")
	tb.waitFor(`document.querySelector('#matrix-grid[data-scope="bucket"]')`)
	tb.click(`#matrix-grid td[data-holder="admin"][data-action="view_screenshots"] a`)
	tb.waitFor(`document.querySelector('#cell-panel').dataset.cell === 'admin view_screenshots bucket'`)
	if v := tb.text("#cell-verdict"); v != "DENY" {
		t.Errorf("admin × view_screenshots at bucket: %s, want DENY (the bucket grants are missing)", v)
	}
	if m := tb.text("#cell-panel .missing"); !strings.Contains(m, "use_file_storage_manager") {
		t.Errorf("missing does not name the Storage Manager grant: %q", m)
	}
	var cites []string
	tb.evalInto(`[...document.querySelectorAll('#cell-citations a.cite')].map((a) => a.textContent)`, &cites)
	for _, want := range []string{"celonis-task-mining-permissions.txt:38", "celonis-task-mining-permissions-older.txt:4"} {
		if !slices.Contains(cites, want) {
			t.Errorf("no citation of %s; citations: %v", want, cites)
		}
	}
	// The URL names the cell.
	var href string
	tb.evalInto(`location.hash`, &href)
	if !strings.Contains(href, "holder=admin") || !strings.Contains(href, "action=view_screenshots") {
		t.Errorf("the URL does not name the cell: %s", href)
	}

	tb.eval(`document.getElementById('main').removeAttribute('data-ready'); true`)
	tb.click(`#cell-citations a.cite[href*="line=38"]`)
	tb.ready()
	vendor, err := os.ReadFile(filepath.Join(harness.Root(), "internal", "citation", "documents", "celonis-task-mining-permissions.txt"))
	if err != nil {
		t.Fatal(err)
	}
	line38 := strings.Split(string(vendor), "\n")[37]
	if got := tb.text("#L38.cited"); got != line38 {
		t.Errorf("line 38 reads %q, the document %q", got, line38)
	}
	var focused string
	tb.evalInto(`document.activeElement.id`, &focused)
	if focused != "L38" {
		t.Errorf("focus is on %q, not the cited line", focused)
	}
}

// TestCandidateBundle: a candidate bundle in which UiPath's business
// analyst may update projects changes exactly that cell; the page lists
// it and marks it in the grid. Without the token the comparison is
// refused with the API's 401.
func TestCandidateBundle(t *testing.T) {
	dir := t.TempDir()
	logFile := filepath.Join(dir, "decisions.log")
	srv := harness.Start(t, harness.Options{Console: true, DecisionLogFile: logFile})
	tb := openTab(t, srv)
	// Logged decisions: bob, a business analyst on p1, may read it (both
	// bundles agree) and may not update it (the candidate would flip it).
	if r := srv.Do(http.MethodPut, "/v1/systems/uipath-task-mining-cloud/projects/p1", map[string]any{"created_by": "owner"}, true); r.Status != http.StatusOK {
		t.Fatalf("registering p1: %d %s", r.Status, r.Raw)
	}
	srv.Assign(map[string]any{"subject": "user:bob", "system": "uipath-task-mining-cloud", "role": "business_analyst", "scope": map[string]any{"type": "project", "id": "p1"}})
	for _, action := range []string{"read_project", "update_project", "update_project"} {
		srv.Check(map[string]any{"subject": "bob", "system": "uipath-task-mining-cloud", "action": action, "resource": map[string]any{"type": "project", "id": "p1"}})
	}
	for _, sub := range []string{"policies", "systems"} {
		if out, err := exec.Command("cp", "-r", filepath.Join(harness.Root(), sub), dir).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
	}
	catalog := filepath.Join(dir, "systems", "uipath-task-mining-cloud", "data.json")
	raw, err := os.ReadFile(catalog)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	row := doc["matrix"].(map[string]any)["project"].(map[string]any)["business_analyst"].(map[string]any)
	if row["update_project"] != "no" {
		t.Fatalf("the fixture expects business_analyst update_project = no, got %v", row["update_project"])
	}
	row["update_project"] = "yes"
	raw, _ = json.Marshal(doc)
	if err := os.WriteFile(catalog, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(dir, "candidate.tar.gz")
	if out, err := exec.Command(bin, "bundle", "build", dir, "-o", bundle).CombinedOutput(); err != nil {
		t.Fatalf("bundle build: %v %s", err, out)
	}

	tb.open("matrix?system=uipath-task-mining-cloud&scope=project")
	tb.waitFor(`document.querySelector('#matrix-grid[data-scope="project"]')`)
	if err := chromedp.Do(tb.ctx, chromedp.SetUploadFiles(chromedp.CSS("#candidate-file"), []string{bundle})); err != nil {
		t.Fatal(err)
	}
	tb.click("#candidate-compare")
	tb.waitFor(`document.querySelector('#candidate-result .error')`)
	if s := tb.text("#candidate-result .error strong"); s != "401 unauthorized" {
		t.Errorf("without the token: %q", s)
	}

	// The log is flushed every second: wait until it holds the three checks.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		raw, _ := os.ReadFile(logFile)
		if bytes.Count(raw, []byte("\n")) >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the decision log has not the three checks: %q", raw)
		}
	}
	tb.setToken()
	tb.waitFor(`document.querySelector('#matrix-grid[data-scope="project"]')`)
	if err := chromedp.Do(tb.ctx, chromedp.SetUploadFiles(chromedp.CSS("#candidate-file"), []string{bundle})); err != nil {
		t.Fatal(err)
	}
	tb.click("#candidate-compare")
	tb.waitFor(`document.querySelector('#candidate-summary, #candidate-result .error')`)
	if s := tb.text("#candidate-summary"); !strings.HasPrefix(s, "1 of ") {
		t.Fatalf("summary: %q (%s)", s, tb.text("#candidate-result"))
	}
	var rows [][]string
	tb.evalInto(`[...document.querySelectorAll('#candidate-changes tbody tr')].map((tr) => [...tr.cells].map((td) => td.textContent))`, &rows)
	if want := [][]string{{"business_analyst", "update_project", "project", "no", "yes"}}; !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("changes: %v, want %v", rows, want)
	}
	var marked []string
	tb.evalInto(`[...document.querySelectorAll('#matrix-grid td.changed')].map((td) => td.dataset.holder + ' ' + td.dataset.action + ' ' + td.querySelector('.change').textContent)`, &marked)
	if want := []string{"business_analyst update_project → yes"}; !slices.Equal(marked, want) {
		t.Errorf("marked in the grid: %v, want %v", marked, want)
	}
	// The server's decision log replayed: bob's two update_project checks
	// flip, the read does not.
	tb.waitFor(`document.querySelector('#candidate-replay-summary, #candidate-replay .error')`)
	if s := tb.text("#candidate-replay-summary"); !strings.HasPrefix(s, "2 of 3 logged decisions would flip") {
		t.Errorf("replay: %q (%s)", s, tb.text("#candidate-replay"))
	}
	var groups [][]string
	tb.evalInto(`[...document.querySelectorAll('#candidate-replay-groups tbody tr')].map((tr) => [...tr.cells].slice(0, 6).map((td) => td.textContent))`, &groups)
	if want := [][]string{{"uipath-task-mining-cloud", "update_project", "2", "0", "2", "0"}}; !slices.EqualFunc(groups, want, slices.Equal) {
		t.Errorf("replay groups: %v, want %v", groups, want)
	}
}

// TestPagesWithoutToken: without the admin token the store's pages say
// so instead of failing, and the pages that need none work.
func TestPagesWithoutToken(t *testing.T) {
	tb := newTab(t)
	tb.open("assignments")
	if !strings.Contains(tb.text("#assignments-needs-token"), "admin token") {
		t.Errorf("assignments without a token: %q", tb.text("main"))
	}
	tb.goTo("subject?user=alice")
	if g := tb.text("#subject-groups"); !strings.Contains(g, "admin token") {
		t.Errorf("groups without a token: %q", g)
	}
	if p := tb.text("#subject-permissions"); !strings.Contains(p, "Effective permissions") || strings.Contains(p, "401") {
		t.Errorf("effective permissions without a token: %q", p)
	}
	// A wrong token is refused by the server and not kept.
	tb.typeInto("#token-input", "not-the-token")
	tb.click("#token-set")
	tb.waitFor(`document.getElementById('token-state').textContent === 'the server refused that token'`)
	var kept any
	tb.evalInto(`sessionStorage.getItem('permatrix.adminToken')`, &kept)
	if kept != nil {
		t.Errorf("a refused token was kept: %v", kept)
	}
}

// TestScreenshot takes the matrix page's screenshot shown in the README.
// With PERMATRIX_UPDATE_SCREENSHOT=1 it writes docs/console-matrix.png;
// otherwise it only checks that the page renders to an image.
func TestScreenshot(t *testing.T) {
	tb := newTab(t)
	if err := chromedp.Do(tb.ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	tb.open("matrix?system=uipath-task-mining-suite&scope=service&holder=process_sme&action=view_discovery_results")
	tb.waitFor(`document.querySelector('#cell-panel[data-cell]')`)
	shot, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 800 {
		t.Errorf("screenshot is %v", b)
	}
	if os.Getenv("PERMATRIX_UPDATE_SCREENSHOT") == "1" {
		out := filepath.Join(harness.Root(), "docs", "console-matrix.png")
		if err := os.WriteFile(out, shot, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", out)
	}
}

// TestOversizedCandidateIsNotRead: a candidate bundle larger than the
// server takes (its body limit, which the matrix answer says) is refused
// by the page before it reads a byte of it — a 3 GiB file picked by
// mistake was read whole into the tab, which froze, to be refused with a
// 413 — and the page says why. A file of the limit's size is read and
// sent (here it is no bundle: the server's 422).
func TestOversizedCandidateIsNotRead(t *testing.T) {
	const limit = 64 << 10
	srv := harness.Start(t, harness.Options{Console: true, BodyLimit: limit})
	tb := openTab(t, srv)
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.tar.gz") // sparse: 3 GiB, no disk used
	f, err := os.Create(huge)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(3 << 30); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fits := filepath.Join(dir, "fits.tar.gz")
	if err := os.WriteFile(fits, bytes.Repeat([]byte{'x'}, limit), 0o644); err != nil {
		t.Fatal(err)
	}

	tb.open("overview")
	tb.setToken()
	tb.goTo("matrix?system=uipath-task-mining-cloud")
	tb.waitFor(`document.querySelector('#matrix-grid')`)
	// Count every way the page could read a file, and the uploads it sends.
	tb.eval(`(() => {
	  window.__reads = [];
	  for (const m of ['arrayBuffer', 'text', 'stream', 'bytes', 'slice']) {
	    const orig = Blob.prototype[m];
	    if (orig) Blob.prototype[m] = function (...a) { window.__reads.push('Blob.' + m); return orig.apply(this, a); };
	  }
	  for (const m of ['readAsArrayBuffer', 'readAsBinaryString', 'readAsDataURL', 'readAsText']) {
	    const orig = FileReader.prototype[m];
	    FileReader.prototype[m] = function (...a) { window.__reads.push('FileReader.' + m); return orig.apply(this, a); };
	  }
	  window.__uploads = [];
	  const f = window.fetch;
	  window.fetch = (u, o) => { if (o && o.method === 'POST') window.__uploads.push(String(u)); return f(u, o); };
	  return true })()`)
	type seen struct{ Reads, Uploads []string }
	observed := func() seen {
		var s seen
		tb.evalInto(`({reads: window.__reads, uploads: window.__uploads})`, &s)
		return s
	}

	if err := chromedp.Do(tb.ctx, chromedp.SetUploadFiles(chromedp.CSS("#candidate-file"), []string{huge})); err != nil {
		t.Fatal(err)
	}
	tb.click("#candidate-compare")
	tb.waitFor(`document.querySelector('#candidate-result [role="alert"]')`)
	msg := tb.text(`#candidate-result [role="alert"]`)
	for _, want := range []string{"huge.tar.gz", "3 GiB (3,221,225,472 bytes)", "64 KiB (65,536 bytes)", "not read"} {
		if !strings.Contains(msg, want) {
			t.Errorf("the page says %q, want %q in it", msg, want)
		}
	}
	if s := observed(); len(s.Reads) != 0 || len(s.Uploads) != 0 {
		t.Errorf("a file over the limit: read %v, sent %v; want neither", s.Reads, s.Uploads)
	}

	if err := chromedp.Do(tb.ctx, chromedp.SetUploadFiles(chromedp.CSS("#candidate-file"), []string{fits})); err != nil {
		t.Fatal(err)
	}
	tb.click("#candidate-compare")
	tb.waitFor(`document.querySelector('#candidate-result .error[data-status]')`)
	if s := tb.text("#candidate-result .error strong"); s != "422 unprocessable" {
		t.Errorf("a file of the limit's size: %q (%s), want the server's 422", s, tb.text("#candidate-result"))
	}
	if s := observed(); len(s.Reads) == 0 || len(s.Uploads) != 1 || !strings.HasSuffix(s.Uploads[0], "/v1/matrix/uipath-task-mining-cloud/diff") {
		t.Errorf("a file of the limit's size: read %v, sent %v; want it read and sent to the diff", s.Reads, s.Uploads)
	}
}
