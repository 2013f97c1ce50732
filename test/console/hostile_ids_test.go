package console_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// importLines stores assignments through POST /v1/import (which keeps the
// ids it is given), one JSON object a line.
func importLines(t *testing.T, tb *tab, lines []string) {
	t.Helper()
	r := tb.srv.Do(http.MethodPost, "/v1/import", strings.Join(lines, "\n")+"\n", true, "Content-Type", "application/x-ndjson")
	if r.Status != http.StatusOK {
		t.Fatalf("import: %d %s", r.Status, r.Raw)
	}
}

// followLink goes to the console route a link on the page points at.
func (tb *tab) followLink(sel string) {
	tb.t.Helper()
	var href string
	tb.evalInto(`(document.querySelector(`+jsString(sel)+`) || {getAttribute: () => ''}).getAttribute('href')`, &href)
	route, ok := strings.CutPrefix(href, "#/")
	if !ok {
		tb.t.Fatalf("%s links to %q", sel, href)
	}
	tb.goTo(route)
}

// rowIDs are the assignment ids the Assignments page lists.
func (tb *tab) rowIDs() []string {
	tb.t.Helper()
	var ids []string
	tb.evalInto(`[...document.querySelectorAll('#assignment-table tbody tr')].map((tr) => tr.dataset.id)`, &ids)
	return ids
}

// TestPagingWithCommas: assignment ids may hold commas (an import keeps
// its ids), and so may the cursor of the next page, which is the last id
// of this one: the pages the console keeps in its URL still follow each
// other.
func TestPagingWithCommas(t *testing.T) {
	tb := newTab(t)
	var lines, want []string
	for i := 1; i <= 25; i++ {
		id := fmt.Sprintf("a,z%02d", i)
		want = append(want, id)
		lines = append(lines, fmt.Sprintf(`{"id":%q,"subject":"user:pager","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p%02d"}}`, id, i))
	}
	importLines(t, tb, lines)
	tb.open("overview")
	tb.setToken()
	tb.goTo("assignments?subject=" + urlQuery("user:pager"))
	tb.waitFor(`document.querySelector('#assignment-table')`)
	if got := tb.rowIDs(); strings.Join(got, " ") != strings.Join(want[:20], " ") {
		t.Fatalf("page 1: %q", got)
	}
	tb.followLink("#page-next")
	tb.waitFor(`document.querySelector('#assignment-table, #assignment-none')`)
	if got := tb.rowIDs(); strings.Join(got, " ") != strings.Join(want[20:], " ") {
		t.Errorf("page 2: %q, want %q", got, want[20:])
	}
	tb.followLink("#page-prev")
	tb.waitFor(`document.querySelector('#assignment-table, #assignment-none')`)
	if got := tb.rowIDs(); strings.Join(got, " ") != strings.Join(want[:20], " ") {
		t.Errorf("back to page 1: %q", got)
	}
}

// TestDotIDs: "." and ".." are valid ids, but a browser resolves them in a
// URL's path (encoded too), so a request naming one would reach another
// resource: the Subject page of user "." read every user's memberships
// (GET /v1/data/store/memberships/ — the path without its last segment)
// and listed the other users' ids as its groups. The console refuses such
// a request and says why.
func TestDotIDs(t *testing.T) {
	tb := newTab(t)
	for _, m := range [][2]string{{"dots", "."}, {"secret-group", "bob"}} {
		if r := tb.srv.Do(http.MethodPut, "/v1/groups/"+m[0]+"/members/"+urlPath(m[1]), nil, true); r.Status != http.StatusOK {
			t.Fatalf("membership %v: %d %s", m, r.Status, r.Raw)
		}
	}
	tb.open("overview")
	tb.setToken()
	for _, user := range []string{".", ".."} {
		tb.goTo("subject?user=" + urlQuery(user))
		tb.waitFor(`document.querySelector('#subject-groups h2') && document.querySelector('#subject-permissions h2')`)
		var groups []string
		tb.evalInto(`[...document.querySelectorAll('#subject-group-list li')].map((li) => li.textContent)`, &groups)
		if len(groups) != 0 {
			t.Errorf("user %q: groups shown %q (another resource's keys)", user, groups)
		}
		for _, sec := range []string{"#subject-groups", "#subject-permissions"} {
			if msg := tb.text(sec + " .error"); !strings.Contains(msg, "path segment") {
				t.Errorf("user %q: %s says %q, want the request refused", user, sec, msg)
			}
		}
	}
}

// TestPrototypeNamesInURL: the page and the values a link names are looked
// up among the console's own pages, systems and actions — a name that an
// object inherits (constructor, __proto__, toString) is not one of them.
func TestPrototypeNamesInURL(t *testing.T) {
	tb := newTab(t)
	tb.open("overview")
	for _, name := range []string{"constructor", "__proto__", "toString"} {
		tb.goTo(name)
		if got := tb.text("main h1"); got != "Not found" {
			t.Errorf("#/%s: %q, want Not found", name, got)
		}
	}
	for _, route := range []string{"check?system=constructor", "check?system=__proto__", "check?system=celonis-task-mining&action=constructor",
		"check?system=celonis-task-mining&action=__proto__&resource_type=constructor"} {
		tb.goTo(route)
		if got := tb.text("main h1"); got != "Check" || tb.text("#check-form") == "" {
			t.Errorf("#/%s: %q, %q; want the Check page", route, got, tb.text("main .error"))
		}
	}
}

// TestSubjectSaysWhenCut: the Subject page reads at most 5,000 of a user's
// assignments; when there are more, it says that the table is not all of
// them (and where they all are) rather than passing the part for the whole.
func TestSubjectSaysWhenCut(t *testing.T) {
	tb := newTab(t)
	var lines []string
	for i := range 5001 {
		lines = append(lines, fmt.Sprintf(`{"subject":"user:many","system":"celonis-task-mining","permission":"edit_users","scope":{"type":"project","id":"p%04d"}}`, i))
	}
	importLines(t, tb, lines)
	tb.open("overview")
	tb.setToken()
	tb.goTo("subject?user=many")
	tb.waitFor(`document.querySelector('#subject-assignment-table')`)
	var rows int
	tb.evalInto(`document.querySelectorAll('#subject-assignment-table tbody tr').length`, &rows)
	if rows != 5000 {
		t.Errorf("%d rows, want the first 5000", rows)
	}
	if note := tb.text("#subject-assignments-cut"); !strings.Contains(note, "5000") {
		t.Errorf("the page does not say the list is cut: %q", note)
	}
	var href string
	tb.evalInto(`(document.querySelector('#subject-assignments-cut a') || {getAttribute: () => ''}).getAttribute('href')`, &href)
	if href != "#/assignments?subject="+urlQuery("user:many") {
		t.Errorf("the note links to %q, want the Assignments page of user:many", href)
	}
}

// TestBidiControlsAreShown: an id may hold Unicode's bidirectional
// controls (U+202E RIGHT-TO-LEFT OVERRIDE …), which reorder the text after
// them: "user:evil\u202etxet" would read "user:eviltext", another user's
// id. The console shows such a character by its code point instead.
func TestBidiControlsAreShown(t *testing.T) {
	tb := newTab(t)
	spoof := "evil\u202etxet"
	tb.srv.Assign(map[string]any{"subject": "user:" + spoof, "system": "celonis-task-mining", "role": "analyst", "scope": map[string]any{"type": "service"}})
	if r := tb.srv.Do(http.MethodPut, "/v1/groups/"+urlPath("ops\u2067x")+"/members/"+urlPath(spoof), nil, true); r.Status != http.StatusOK {
		t.Fatalf("membership: %d %s", r.Status, r.Raw)
	}
	tb.open("overview")
	tb.setToken()
	shown := func(want string) {
		t.Helper()
		var text string
		tb.evalInto(`document.querySelector('main').innerText`, &text)
		if strings.ContainsAny(text, "\u202e\u2067") {
			t.Errorf("the page shows bidirectional controls as they act: %q", text)
		}
		if !strings.Contains(text, want) {
			t.Errorf("the page does not show %q: %q", want, text)
		}
	}
	tb.goTo("assignments")
	tb.waitFor(`document.querySelector('#assignment-table')`)
	shown("user:evil[U+202E]txet")
	tb.goTo("subject?user=" + urlQuery(spoof))
	tb.waitFor(`document.querySelector('#subject-group-list') && document.querySelector('#subject-assignment-table') && document.querySelector('#subject-permissions h2')`)
	shown("ops[U+2067]x")
}

// TestUnsendableToken: a token the browser cannot put in a header (a
// character beyond Latin-1: fetch refuses the request before sending it)
// is not kept as if it might work — it would make every admin call fail.
func TestUnsendableToken(t *testing.T) {
	tb := newTab(t)
	tb.open("assignments")
	tb.typeInto("#token-input", "token-トークン")
	tb.eval(`document.getElementById('main').removeAttribute('data-ready'); true`)
	tb.click("#token-set")
	tb.waitFor(`document.getElementById('token-state').textContent !== 'no token: checks and the matrix only'`)
	var kept string
	tb.evalInto(`sessionStorage.getItem('permatrix.adminToken') || ''`, &kept)
	if kept != "" {
		t.Errorf("the token %q was kept; the page says %q", kept, tb.text("#token-state"))
	}
	if !strings.Contains(tb.text("#token-state"), "not kept") {
		t.Errorf("token state: %q", tb.text("#token-state"))
	}
}

// TestInvisibleCharactersAreShown: an id may hold characters that show as
// nothing or as a plain space — zero-width ones (U+200B …), the soft
// hyphen, the word joiner, the byte order mark, tag characters
// (U+E0000 …), variation selectors, a no-break space — so that
// "al\u200bice" reads "alice", another subject. And a word may mix Latin
// letters with Cyrillic or Greek look-alikes ("\u0430lice", a Cyrillic
// а). The console shows those characters by code point; a word in one
// script stays as it is.
func TestInvisibleCharactersAreShown(t *testing.T) {
	tb := newTab(t)
	shownAs := map[string]string{
		"al\u200bice":                          "al[U+200B]ice",
		"bo\u00adb":                            "bo[U+00AD]b",
		"ca\u2060rol":                          "ca[U+2060]rol",
		"\ufeffdave":                           "[U+FEFF]dave",
		"er\U000E0041in":                       "er[U+E0041]in",
		"fr\ufe0fank":                          "fr[U+FE0F]ank",
		"gr\u180eace":                          "gr[U+180E]ace",
		"he\u00a0idi":                          "he[U+00A0]idi",
		"\u0430lice":                           "[U+0430]lice",
		"b\u03bfb-ops":                         "b[U+03BF]b-ops",
		"\u0430\u043b\u0438\u0441\u0430-smith": "\u0430\u043b\u0438\u0441\u0430-smith", // a Cyrillic word and a Latin one
	}
	for id := range shownAs {
		tb.srv.Assign(map[string]any{"subject": "user:" + id, "system": "celonis-task-mining", "role": "analyst", "scope": map[string]any{"type": "service"}})
	}
	if r := tb.srv.Do(http.MethodPut, "/v1/groups/"+urlPath("o\u200dps")+"/members/"+urlPath("al\u200bice"), nil, true); r.Status != http.StatusOK {
		t.Fatalf("membership: %d %s", r.Status, r.Raw)
	}
	tb.open("overview")
	tb.setToken()
	pageText := func() string {
		t.Helper()
		var text string
		tb.evalInto(`document.querySelector('main').innerText`, &text)
		return text
	}
	tb.goTo("assignments")
	tb.waitFor(`document.querySelector('#assignment-table')`)
	text := pageText()
	for id, want := range shownAs {
		if !strings.Contains(text, "user:"+want) {
			t.Errorf("the page does not show user:%q as %q", id, "user:"+want)
		}
	}
	if i := strings.IndexAny(text, "\u200b\u00ad\u2060\ufeff\U000E0041\ufe0f\u180e\u00a0\u03bf"); i >= 0 {
		t.Errorf("the page shows %q as it acts: …%q…", []rune(text[i:])[0], text[max(0, i-20):min(len(text), i+20)])
	}
	if strings.Contains(text, "\u0430lice") {
		t.Errorf("the page shows a Cyrillic \u0430 among Latin letters as it is")
	}
	tb.goTo("subject?user=" + urlQuery("al\u200bice"))
	tb.waitFor(`document.querySelector('#subject-group-list') && document.querySelector('#subject-assignment-table') && document.querySelector('#subject-permissions h2')`)
	if text := pageText(); !strings.Contains(text, "o[U+200D]ps") || strings.Contains(text, "\u200d") {
		_, groups, _ := strings.Cut(text, "Groups")
		t.Errorf("the group o\\u200dps is not shown by code point: %q", groups)
	}
}

// TestTypedIDsShowWhatIsSent: an id typed or pasted into a field shows its
// bidirectional controls and invisible characters as they act — pasted
// "u\u202eevil" reads "ulive" in the field — so beside every text field the
// page says which such characters the value holds and what it reads
// character by character, as the page shows ids elsewhere. The value is
// still sent as it is (an operator must be able to look up and remove a
// hostile stored id), and the answer shows it by code point.
func TestTypedIDsShowWhatIsSent(t *testing.T) {
	tb := newTab(t)
	// paste sets a field's value as a paste does (an input event).
	paste := func(sel, value string) {
		t.Helper()
		tb.eval(`(() => { const el = document.querySelector(` + jsString(sel) + `); el.focus(); el.value = ` + jsString(value) + `;
		  el.dispatchEvent(new InputEvent('input', {bubbles: true, inputType: 'insertFromPaste'})); return true })()`)
	}
	// warning is the text of the field's warning, "" when there is none
	// or it is not shown; it must be one of the field's descriptions.
	warning := func(sel string) string {
		t.Helper()
		var w struct {
			Text      string
			Described bool
		}
		tb.evalInto(`(() => { const el = document.querySelector(`+jsString(sel)+`);
		  const warn = document.getElementById(el.id + '-warn');
		  if (!warn || !warn.checkVisibility()) return {text: '', described: false};
		  return {text: warn.textContent || '(an empty warning box)', described: (el.getAttribute('aria-describedby') || '').split(' ').includes(warn.id)} })()`, &w)
		if w.Text != "" && !w.Described {
			t.Errorf("%s: the warning is not among the field's descriptions", sel)
		}
		return w.Text
	}
	tb.open("check?system=celonis-task-mining")
	if w := warning("#check-subject"); w != "" {
		t.Errorf("an empty field warns: %q", w)
	}
	paste("#check-subject", "u\u202eevil")
	if w := warning("#check-subject"); !strings.Contains(w, "U+202E") || !strings.Contains(w, "u[U+202E]evil") {
		t.Errorf("pasted u\\u202eevil: the warning is %q, want U+202E named and u[U+202E]evil shown", w)
	}
	paste("#check-groups", "ops,\u0430dmins")
	if w := warning("#check-groups"); !strings.Contains(w, "U+0430") || !strings.Contains(w, "ops,[U+0430]dmins") {
		t.Errorf("a Cyrillic а among Latin letters: the warning is %q", w)
	}
	tb.click("#check-submit")
	tb.waitFor(`document.querySelector('#check-verdict')`)
	if v := tb.text("#check-result .verdict"); !strings.Contains(v, "u[U+202E]evil") {
		t.Errorf("the answer shows the subject as %q, want u[U+202E]evil (the value as sent)", v)
	}
	paste("#check-subject", "alice")
	if w := warning("#check-subject"); w != "" {
		t.Errorf("a plain id still warns: %q", w)
	}

	// A value a link puts in a field (the URL's fragment) warns as it is shown.
	tb.goTo("subject?user=" + urlQuery("al\u200bice"))
	if w := warning("#subject-user"); !strings.Contains(w, "U+200B") || !strings.Contains(w, "al[U+200B]ice") {
		t.Errorf("user al\\u200bice from the URL: the warning is %q", w)
	}

	// The fields of the changes, the actor's among them.
	tb.setToken()
	tb.goTo("assignments")
	tb.waitFor(`document.querySelector('#assignment-table, #assignment-none')`)
	for _, sel := range []string{"#actor", "#add-subject-id", "#group-id", "#member-user", "#filter-subject"} {
		paste(sel, "bo\u00adb\u2060")
		if w := warning(sel); !strings.Contains(w, "U+00AD") || !strings.Contains(w, "U+2060") || !strings.Contains(w, "bo[U+00AD]b[U+2060]") {
			t.Errorf("%s: the warning is %q", sel, w)
		}
	}
}
