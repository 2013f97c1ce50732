// Package console_test drives the web console (internal/console) in a real
// headless Chromium against a real server: the pages, what they show, what
// they send. One browser for the package run, a tab per test; a failed
// test leaves a screenshot in the test output directory and says where.
//
// Chromium is Debian's package, installed by the harness when missing
// (test/harness/chromium.go). See docs/console.md.
package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/permatrix/permatrix/test/harness"
)

var (
	browser *harness.Browser
	bin     string // the permatrix binary, for `permatrix matrix`
)

func TestMain(m *testing.M) {
	path, remove, err := harness.BuildBinary()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = path
	browser, err = harness.StartBrowser()
	if err != nil {
		remove()
		fmt.Fprintf(os.Stderr, "the console tests need headless Chromium: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	browser.Close()
	remove()
	os.Exit(code)
}

// watch is installed in every page before its own scripts run: it records
// Content-Security-Policy violations and uncaught errors, which every test
// then asserts there were none of (a page that needed an inline script, or
// that threw, would pass a test that only looks at the DOM).
const watch = `(() => {
  window.__problems = [];
  document.addEventListener('securitypolicyviolation', (e) => window.__problems.push('CSP ' + e.violatedDirective + ' blocked ' + e.blockedURI));
  window.addEventListener('error', (e) => window.__problems.push('error: ' + e.message));
  window.addEventListener('unhandledrejection', (e) => {
    const r = e.reason;
    // Requests a route change aborted are not problems.
    if (r && r.name === 'AbortError') return;
    window.__problems.push('unhandled rejection: ' + (r && r.message ? r.message : String(r)));
  });
})()`

// tab is a test's browser tab on a server with the console.
type tab struct {
	t   *testing.T
	ctx context.Context
	srv *harness.Server
}

// newTab starts a server with the console and opens a tab on it.
func newTab(t *testing.T) *tab {
	t.Helper()
	srv := harness.Start(t, harness.Options{Console: true})
	return openTab(t, srv)
}

func openTab(t *testing.T, srv *harness.Server) *tab {
	t.Helper()
	ctx := browser.Tab(t, 3*time.Minute)
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: watch}); err != nil {
		t.Fatal(err)
	}
	tb := &tab{t: t, ctx: ctx, srv: srv}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		var problems []string
		raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](`window.__problems || []`))
		if err == nil {
			_ = json.Unmarshal(raw, &problems)
		}
		for _, p := range problems {
			t.Errorf("the page reported: %s", p)
		}
	})
	return tb
}

// open loads the console at a route ("matrix?system=…") and waits until
// the page has rendered.
func (tb *tab) open(route string) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.Navigate(tb.srv.URL+"/ui/#/"+route)); err != nil {
		tb.t.Fatal(err)
	}
	tb.ready()
}

// goTo changes the route in the loaded page, as a link does, and waits.
func (tb *tab) goTo(route string) {
	tb.t.Helper()
	// The same fragment again fires no hashchange: then the page is as it is.
	tb.eval(`(() => { const h = ` + jsString("#/"+route) + `; if (location.hash !== h) { document.getElementById('main').removeAttribute('data-ready'); location.hash = h } return true })()`)
	tb.ready()
}

// ready waits until the page's route has rendered (main[data-ready]).
func (tb *tab) ready() {
	tb.t.Helper()
	tb.waitFor(`document.querySelector('main[data-ready="true"]') !== null`)
}

// waitFor evaluates a JavaScript condition until it holds. (chromedp's Poll
// builds its predicate with new Function, which the console's CSP refuses:
// so this asks from the outside.)
func (tb *tab) waitFor(cond string) {
	tb.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`))
		if err != nil {
			tb.t.Fatalf("waiting for %s: %v", cond, err)
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.t.Fatalf("waited 60s for %s", cond)
		}
		time.Sleep(40 * time.Millisecond)
	}
}

// eval evaluates JavaScript and decodes its result into v (nil: ignored).
func (tb *tab) evalInto(js string, v any) {
	tb.t.Helper()
	raw, err := chromedp.Run(tb.ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", js, err)
	}
	if v != nil {
		if err := json.Unmarshal(raw, v); err != nil {
			tb.t.Fatalf("evaluating %s: %v (%s)", js, err, raw)
		}
	}
}

func (tb *tab) eval(js string) { tb.t.Helper(); tb.evalInto(js, nil) }

// text is the text of the first element sel matches ("" if none).
func (tb *tab) text(sel string) string {
	tb.t.Helper()
	var s string
	tb.evalInto(`(document.querySelector(`+jsString(sel)+`) || {}).textContent || ''`, &s)
	return s
}

// click clicks sel with the mouse.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
		tb.t.Fatalf("click %s: %v", sel, err)
	}
}

// typeInto replaces the text of an input by typing it.
func (tb *tab) typeInto(sel, text string) {
	tb.t.Helper()
	tb.eval(`(() => { const el = document.querySelector(` + jsString(sel) + `); el.value = ''; el.focus(); return true })()`)
	if text != "" {
		if err := chromedp.Do(tb.ctx, chromedp.SendKeys(chromedp.CSS(sel), text)); err != nil {
			tb.t.Fatalf("typing into %s: %v", sel, err)
		}
	}
	tb.eval(`document.querySelector(` + jsString(sel) + `).dispatchEvent(new Event('change', {bubbles: true})); true`)
}

// choose picks an option of a <select> by value, as a user does (the
// change event follows).
func (tb *tab) choose(sel, value string) {
	tb.t.Helper()
	var ok bool
	tb.evalInto(`(() => {
	  const el = document.querySelector(`+jsString(sel)+`);
	  if (!el || ![...el.options].some((o) => o.value === `+jsString(value)+`)) return false;
	  el.value = `+jsString(value)+`;
	  el.dispatchEvent(new Event('input', {bubbles: true}));
	  el.dispatchEvent(new Event('change', {bubbles: true}));
	  return true;
	})()`, &ok)
	if !ok {
		tb.t.Fatalf("%s has no option %q", sel, value)
	}
}

// setToken types the admin token into the header's form and waits for the
// server to accept it.
func (tb *tab) setToken() {
	tb.t.Helper()
	tb.typeInto("#token-input", harness.Token)
	tb.eval(`document.getElementById('main').removeAttribute('data-ready'); true`)
	tb.click("#token-set")
	tb.waitFor(`document.getElementById('token-state').textContent === 'token accepted'`)
	tb.ready()
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// apiMessage makes a request to the server directly and returns the
// error message of its answer, which must have the status want.
func apiMessage(t *testing.T, srv *harness.Server, method, path string, body any, want int) string {
	t.Helper()
	r := srv.Do(method, path, body, true)
	if r.Status != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, r.Status, r.Raw, want)
	}
	e, _ := r.Body["error"].(map[string]any)
	msg, _ := e["message"].(string)
	if msg == "" {
		t.Fatalf("%s %s: no error message in %s", method, path, r.Raw)
	}
	return msg
}

func urlPath(s string) string  { return url.PathEscape(s) }
func urlQuery(s string) string { return url.QueryEscape(s) }
