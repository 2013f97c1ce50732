package console_test

import (
	"testing"
	"time"
)

// TestOverviewPollsDoNotPileUp: while /metrics does not answer, the
// overview waits for it; it asks again only after the answer, never a
// second /metrics beside a pending one (a fixed two-second beat started a
// new poll every two seconds, each waiting on its own request).
func TestOverviewPollsDoNotPileUp(t *testing.T) {
	tb := newTab(t)
	tb.open("overview")
	tb.waitFor(`document.getElementById('overview-split-figures')`)
	// From now on /metrics hangs (until the page leaves, as an abort ends it).
	tb.eval(`(() => {
  window.__stalled = 0;
  const real = window.fetch;
  window.fetch = (url, opts) => {
    if (String(url).startsWith('/metrics')) {
      window.__stalled++;
      return new Promise((_, reject) => {
        if (opts && opts.signal) opts.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      });
    }
    return real(url, opts);
  };
  return true;
})()`)
	tb.waitFor(`window.__stalled === 1`)
	// Three polls' worth of time: a poll on a fixed beat would have asked
	// twice more meanwhile.
	time.Sleep(6 * time.Second)
	var stalled int
	tb.evalInto(`window.__stalled`, &stalled)
	if stalled != 1 {
		t.Errorf("%d requests for /metrics pending at once, want 1", stalled)
	}
	tb.goTo("check") // the page leaves: the pending request is aborted
}
