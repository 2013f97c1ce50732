package bundlepoll_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/permatrix/permatrix/internal/bundlepoll"
	"github.com/permatrix/permatrix/internal/management"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
	"github.com/permatrix/permatrix/test/harness"
)

// bundleServer serves one bundle at /bundles/permatrix.tar.gz as OPA's
// bundle servers do: ETag, 304 for If-None-Match, and long polling (Prefer:
// wait=N holds the request until the bundle changes or N seconds pass).
type bundleServer struct {
	mu       sync.Mutex
	body     []byte
	etag     string
	changed  chan struct{}
	requests int
	notMod   int
	longPoll bool
}

func newBundleServer() *bundleServer { return &bundleServer{changed: make(chan struct{})} }

func (bs *bundleServer) set(body []byte, etag string) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	bs.body, bs.etag = body, `"`+etag+`"`
	close(bs.changed)
	bs.changed = make(chan struct{})
}

func (bs *bundleServer) counts() (requests, notModified int) {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.requests, bs.notMod
}

func (bs *bundleServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/bundles/permatrix.tar.gz" {
		http.NotFound(w, r)
		return
	}
	bs.mu.Lock()
	bs.requests++
	body, etag, changed, longPoll := bs.body, bs.etag, bs.changed, bs.longPoll
	bs.mu.Unlock()
	if longPoll {
		w.Header().Set("Content-Type", "application/vnd.openpolicyagent.bundles")
	}
	if inm := r.Header.Get("If-None-Match"); body != nil && inm != "" && strings.Contains(inm, etag) {
		if wait := preferWait(r); longPoll && wait > 0 {
			select {
			case <-changed:
				bs.ServeHTTP(w, r.Clone(r.Context())) // answer with the new bundle
				bs.mu.Lock()
				bs.requests-- // counted once
				bs.mu.Unlock()
				return
			case <-time.After(wait):
			case <-r.Context().Done():
				return
			}
		}
		bs.mu.Lock()
		bs.notMod++
		bs.mu.Unlock()
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if body == nil {
		http.Error(w, "no bundle yet", http.StatusNotFound)
		return
	}
	w.Header().Set("ETag", etag)
	if !longPoll {
		w.Header().Set("Content-Type", "application/gzip")
	}
	_, _ = w.Write(body)
}

func preferWait(r *http.Request) time.Duration {
	for _, part := range strings.Split(r.Header.Get("Prefer"), ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(part), "wait="); ok {
			n, _ := strconv.Atoi(v)
			return time.Duration(n) * time.Second
		}
	}
	return 0
}

// build is what `permatrix bundle build` writes for the repository's
// policies and data, at revision rev, signed when sign is set; edit may
// change a file of the tree first.
func build(t *testing.T, rev string, sign *opa.SignOptions, edit func(dir string)) []byte {
	t.Helper()
	dir := t.TempDir()
	for _, sub := range []string{"policies", "systems"} {
		if err := os.CopyFS(filepath.Join(dir, sub), os.DirFS(filepath.Join(harness.Root(), sub))); err != nil {
			t.Fatal(err)
		}
	}
	if edit != nil {
		edit(dir)
	}
	b, err := opa.ReadLayout(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	b.SetRevision(rev)
	var buf bytes.Buffer
	if err := opa.WriteBundle(&buf, b, sign); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// poller runs a poller of the bundle at url with the given bundles
// section (beyond service and resource) and extra OPA configuration; it
// returns the engine it activates into and the errors reported.
type run struct {
	engine *opa.Engine
	poller *bundlepoll.Poller
	status *management.BundleStatus // what OPA's status plugin would be sent
	mu     sync.Mutex
	errs   []error
}

func (r *run) reported() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.errs...)
}

func (r *run) revision() string {
	if p := r.engine.Current(); p != nil {
		return p.BundleRevision()
	}
	return ""
}

func newRun(t *testing.T, url, source, extra string) *run {
	t.Helper()
	ctx := context.Background()
	cfg := `{"services": {"bundles": {"url": "` + url + `"}}` + extra + `}`
	mgr, err := management.New(ctx, []byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Stop(ctx) })
	var keys map[string]any
	_ = json.Unmarshal([]byte(cfg), &keys)
	src, err := bundlepoll.ParseConfig([]byte(`{"permatrix": {"service": "bundles", "resource": "bundles/permatrix.tar.gz"`+source+`}}`),
		mgr.Plugins().Services(), mgr.Plugins().PublicKeys())
	if err != nil {
		t.Fatal(err)
	}
	r := &run{engine: opa.NewEngine(store.NewMemory()), status: mgr.BundleStatus("permatrix")}
	r.poller, err = bundlepoll.New(bundlepoll.Options{Source: src, Manager: mgr, Activate: r.engine.Activate, StallTimeout: stallTimeout, Status: r.status,
		Report: func(err error) {
			if err != nil {
				r.mu.Lock()
				r.errs = append(r.errs, err)
				r.mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *run) start(t *testing.T) {
	r.poller.Start(context.Background())
	t.Cleanup(func() { r.poller.Stop(context.Background()) })
}

// within is a guard (30 s) where what waited for never comes if it
// breaks — activating a bundle compiles it, which a loaded machine takes
// seconds over — and below the time the broken case takes where that is
// finite (the next poll, a held answer's end).
func waitFor(t *testing.T, what string, within time.Duration, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(within); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if ok() {
			return
		}
	}
	t.Fatalf("not within %s: %s", within, what)
}

// stallTimeout is the Options.StallTimeout of newRun's poller (0: the
// default).
var stallTimeout time.Duration

const fastPolling = `, "polling": {"min_delay_seconds": 1, "max_delay_seconds": 1}`

// TestPicksUpNewRevisions: a new revision is active within seconds of the
// server having it; in between, the server answers 304 to the ETag.
func TestPicksUpNewRevisions(t *testing.T) {
	bs := newBundleServer()
	bs.set(build(t, "rev1", nil, nil), "e1")
	srv := httptest.NewServer(bs)
	t.Cleanup(srv.Close) // after the poller's Stop (cleanups run last first)
	r := newRun(t, srv.URL, fastPolling, "")
	r.start(t)
	waitFor(t, "rev1 active", 30*time.Second, func() bool { return r.revision() == "rev1" })
	waitFor(t, "a 304 for rev1's ETag", 30*time.Second, func() bool { _, n := bs.counts(); return n >= 1 })
	if got := r.engine.Current(); got.BundleRevision() != "rev1" {
		t.Fatalf("after a 304: %s", got.BundleRevision())
	}
	start := time.Now()
	bs.set(build(t, "rev2", nil, nil), "e2")
	waitFor(t, "rev2 active", 30*time.Second, func() bool { return r.revision() == "rev2" })
	t.Logf("rev2 active after %s", time.Since(start))
	if errs := r.reported(); len(errs) > 0 {
		t.Errorf("errors reported: %v", errs)
	}
}

// TestLongPolling: with a long-polling server, a new revision arrives as
// soon as it exists, not at the next poll (here 30 s away).
func TestLongPolling(t *testing.T) {
	bs := newBundleServer()
	bs.longPoll = true
	bs.set(build(t, "rev1", nil, nil), "e1")
	srv := httptest.NewServer(bs)
	t.Cleanup(srv.Close) // after the poller's Stop (cleanups run last first)
	r := newRun(t, srv.URL, `, "polling": {"min_delay_seconds": 30, "max_delay_seconds": 30, "long_polling_timeout_seconds": 20}`, "")
	r.start(t)
	waitFor(t, "rev1 active", 30*time.Second, func() bool { return r.revision() == "rev1" })
	// The next request is a held long poll.
	waitFor(t, "a long poll", 30*time.Second, func() bool { n, _ := bs.counts(); return n >= 2 })
	bs.set(build(t, "rev2", nil, nil), "e2")
	waitFor(t, "rev2 active", 20*time.Second, func() bool { return r.revision() == "rev2" })
}

// TestServerDownAtStartup: no bundle while the server is unreachable (the
// error reported), the bundle once it is up.
func TestServerDownAtStartup(t *testing.T) {
	// Down: a port held bound and not listening refuses connections, and
	// no other test process can take it before the server listens on it.
	port := harness.ReservePort(t)
	addr := port.Addr
	r := newRun(t, "http://"+addr, fastPolling, "")
	r.start(t)
	waitFor(t, "the failure reported", 30*time.Second, func() bool { return len(r.reported()) > 0 })
	if r.engine.Current() != nil {
		t.Fatal("a policy without a bundle")
	}
	bs := newBundleServer()
	bs.set(build(t, "rev1", nil, nil), "e1")
	ln, err := port.Listen()
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: bs}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	waitFor(t, "rev1 active once the server is up", 30*time.Second, func() bool { return r.revision() == "rev1" })
}

func rsaKeys(t *testing.T) (private, public string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

// TestRefusesBadBundles: with keys configured, a bundle signed by another
// key, an unsigned one, and a signed one that does not compile are each
// refused (reported), the last good one serving on; then a good one is
// taken.
func TestRefusesBadBundles(t *testing.T) {
	priv, pub := rsaKeys(t)
	other, _ := rsaKeys(t)
	good := &opa.SignOptions{Key: priv, Algorithm: "RS256", KeyID: "prod"}
	bs := newBundleServer()
	bs.set(build(t, "rev1", good, nil), "e1")
	srv := httptest.NewServer(bs)
	t.Cleanup(srv.Close) // after the poller's Stop (cleanups run last first)
	keys, _ := json.Marshal(map[string]any{"prod": map[string]any{"key": pub, "algorithm": "RS256"}})
	r := newRun(t, srv.URL, fastPolling+`, "signing": {"keyid": "prod"}`, `, "keys": `+string(keys))
	r.start(t)
	waitFor(t, "rev1 active", 30*time.Second, func() bool { return r.revision() == "rev1" })

	broken := func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "policies", "permatrix", "broken.rego"), []byte("package permatrix.broken\n\nx := no_such_function(1)\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, bad := range []struct {
		body []byte
		want string
	}{
		{build(t, "rev-forged", &opa.SignOptions{Key: other, Algorithm: "RS256", KeyID: "prod"}, nil), "verif"},
		{build(t, "rev-unsigned", nil, nil), "signature"},
		{build(t, "rev-broken", good, broken), "no_such_function"},
		{[]byte("not a bundle"), "gzip"},
	} {
		before := len(r.reported())
		bs.set(bad.body, "bad"+strconv.Itoa(i))
		waitFor(t, "the bad bundle refused", 30*time.Second, func() bool { return len(r.reported()) > before })
		if errs := r.reported(); !strings.Contains(errs[len(errs)-1].Error(), bad.want) {
			t.Errorf("bad bundle %d: %v, want %q", i, errs[len(errs)-1], bad.want)
		}
		if rev := r.revision(); rev != "rev1" {
			t.Fatalf("bad bundle %d: %s active", i, rev)
		}
	}
	bs.set(build(t, "rev2", good, nil), "e2")
	waitFor(t, "rev2 active", 30*time.Second, func() bool { return r.revision() == "rev2" })
}

// TestPersisted: the last activated bundle is kept on disk and activated
// by the next run while the server is down; once the server is back, its
// ETag gets a 304.
func TestPersisted(t *testing.T) {
	dir := t.TempDir()
	extra := `, "persistence_directory": "` + dir + `"`
	bs := newBundleServer()
	bs.set(build(t, "rev1", nil, nil), "e1")
	srv := httptest.NewServer(bs)
	r := newRun(t, srv.URL, fastPolling+`, "persist": true`, extra)
	r.start(t)
	waitFor(t, "rev1 active", 30*time.Second, func() bool { return r.revision() == "rev1" })
	path := r.poller.PersistedPath()
	waitFor(t, "rev1 persisted", 30*time.Second, func() bool { _, err := os.Stat(path); return err == nil })
	if path != filepath.Join(dir, "bundles", "permatrix", "bundle.tar.gz") {
		t.Errorf("persisted at %s", path)
	}
	r.poller.Stop(context.Background())
	addr := srv.Listener.Addr().String()
	srv.Close()

	// Next run, server down: the persisted bundle serves.
	next := newRun(t, "http://"+addr, fastPolling+`, "persist": true`, extra)
	if !next.poller.ActivatePersisted(context.Background()) || next.revision() != "rev1" {
		t.Fatalf("the persisted bundle was not activated: %q", next.revision())
	}
	if st := next.status.Status(); st.ActiveRevision != "rev1" || st.LastSuccessfulActivation.IsZero() || !st.LastSuccessfulDownload.IsZero() {
		t.Errorf("status of the persisted bundle (activated, not downloaded): %+v", st)
	}
	next.start(t)
	waitFor(t, "the download failure reported", 30*time.Second, func() bool { return len(next.reported()) > 0 })
	if next.revision() != "rev1" {
		t.Fatal("the persisted bundle stopped serving")
	}
	if st := next.status.Status(); st.ActiveRevision != "rev1" || st.Code != "bundle_error" {
		t.Errorf("status with the server down: %+v", st)
	}
	// Server back with the same bundle: 304 to the persisted ETag.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	_, before := bs.counts()
	back := &http.Server{Handler: bs}
	go func() { _ = back.Serve(ln) }()
	defer back.Close()
	waitFor(t, "a 304 to the persisted ETag", 30*time.Second, func() bool { _, n := bs.counts(); return n > before })
	waitFor(t, "the status's error cleared by the 304", 30*time.Second, func() bool {
		st := next.status.Status()
		return st.Code == "" && !st.LastSuccessfulRequest.IsZero()
	})

	// A damaged persisted bundle is skipped, not fatal.
	if err := os.WriteFile(path, []byte("not a bundle"), 0o600); err != nil {
		t.Fatal(err)
	}
	third := newRun(t, "http://"+addr, fastPolling+`, "persist": true`, extra)
	if third.poller.ActivatePersisted(context.Background()) || third.revision() != "" {
		t.Fatal("a damaged persisted bundle was activated")
	}
	if st := third.status.Status(); st.Code != "bundle_error" || st.ActiveRevision != "" {
		t.Errorf("status of a damaged persisted bundle: %+v", st)
	}
}

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{`{}`, "one bundle, 0"},
		{`{"a": {"service": "s"}, "b": {"service": "s"}}`, "one bundle, 2"},
		{`{"a": {"service": "nope"}}`, "not found"},
		{`{"a": {"resource": "file:///tmp/b.tar.gz"}}`, "server.bundle"},
		{`{"a": {"service": "s", "trigger": "manual"}}`, "periodic"},
		{`{"a": {"service": "s", "polling": {"min_delay_seconds": 10, "max_delay_seconds": 1}}}`, "max polling delay"},
		{`{"a": {"service": "s", "signing": {"keyid": "missing"}}}`, "missing"},
	} {
		if _, err := bundlepoll.ParseConfig([]byte(tc.raw), []string{"s"}, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.raw, err, tc.want)
		}
	}
	src, err := bundlepoll.ParseConfig([]byte(`{"permatrix": {"service": "s"}}`), []string{"s"}, nil)
	if err != nil || src.Resource() != "bundles/permatrix" || src.Service() != "s" || src.Persist() || src.SizeLimit() != bundlepoll.DefaultSizeLimit {
		t.Fatalf("defaults: %+v %v", src, err)
	}
	if src, err := bundlepoll.ParseConfig([]byte(`{"permatrix": {"service": "s", "size_limit_bytes": 1000}}`), []string{"s"}, nil); err != nil || src.SizeLimit() != 1000 {
		t.Fatalf("size_limit_bytes: %v", err)
	}
}

// TestSizeLimit: a bundle with a file over size_limit_bytes is refused.
func TestSizeLimit(t *testing.T) {
	bs := newBundleServer()
	bs.set(build(t, "rev1", nil, nil), "e1")
	srv := httptest.NewServer(bs)
	t.Cleanup(srv.Close)
	r := newRun(t, srv.URL, fastPolling+`, "size_limit_bytes": 512`, "")
	r.start(t)
	waitFor(t, "the bundle refused", 30*time.Second, func() bool { return len(r.reported()) > 0 })
	if err := r.reported()[0]; !strings.Contains(err.Error(), "size") || r.engine.Current() != nil {
		t.Fatalf("%v, active %v", err, r.engine.Current())
	}
}

// withJunk is the bundle body with n more files of size bytes each (zeros:
// a few hundred bytes once gzipped), which the bundle reader skips.
func withJunk(t *testing.T, body []byte, n, size int) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	zeros := make([]byte, size)
	for i := range n {
		if err := tw.WriteHeader(&tar.Header{Name: "/junk/" + strconv.Itoa(i) + ".bin", Mode: 0o600, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSizeLimitWholeBundle: size_limit_bytes bounds the bundle as a whole,
// unpacked, not only each of its files. OPA's reader holds every file of
// the tarball in memory before it reads any, each up to the limit: a
// hostile server's megabyte of gzipped zeros in files just under the
// default 64 MiB made gigabytes, and the bundle was read (and activated).
func TestSizeLimitWholeBundle(t *testing.T) {
	const limit = 512 << 10
	good := build(t, "rev1", nil, nil)
	bs := newBundleServer()
	bs.set(withJunk(t, good, 1, 1024), "e1") // far under the limit
	srv := httptest.NewServer(bs)
	t.Cleanup(srv.Close)
	r := newRun(t, srv.URL, fastPolling+`, "size_limit_bytes": `+strconv.Itoa(limit), "")
	r.start(t)
	waitFor(t, "rev1 active", 30*time.Second, func() bool { return r.revision() == "rev1" })

	bomb := withJunk(t, build(t, "rev-bomb", nil, nil), 8, limit-1) // each file under the limit
	if len(bomb) > limit/8 {
		t.Fatalf("the bomb is %d bytes gzipped", len(bomb))
	}
	bs.set(bomb, "bomb")
	waitFor(t, "the bomb refused", 30*time.Second, func() bool { return len(r.reported()) > 0 })
	if err := r.reported()[0]; !strings.Contains(err.Error(), "size_limit_bytes") {
		t.Fatalf("the bomb: %v", err)
	}
	if rev := r.revision(); rev != "rev1" {
		t.Fatalf("the bomb: %s active", rev)
	}
	bs.set(build(t, "rev2", nil, nil), "e2")
	waitFor(t, "rev2 active", 30*time.Second, func() bool { return r.revision() == "rev2" })
}

// TestStalledBody: a server that sends a bundle's headers and then holds
// the body (a slow-loris body, a proxy stuck mid-stream) fails that
// download after Options.StallTimeout, reported; the next poll gets the
// bundle. The body had no deadline (OPA's response_header_timeout_seconds
// ends at the headers): one stalled download stopped polling for good,
// and nothing was reported.
func TestStalledBody(t *testing.T) {
	good := build(t, "rev1", nil, nil)
	var mu sync.Mutex
	stalls := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		stall := stalls > 0
		stalls--
		mu.Unlock()
		w.Header().Set("Content-Type", "application/gzip")
		w.Header().Set("Content-Length", strconv.Itoa(len(good)))
		if stall {
			_, _ = w.Write(good[:100])
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		w.Header().Set("ETag", `"e1"`)
		_, _ = w.Write(good)
	}))
	t.Cleanup(srv.Close)
	stallTimeout = time.Second
	t.Cleanup(func() { stallTimeout = 0 })
	r := newRun(t, srv.URL, fastPolling, "")
	r.start(t)
	waitFor(t, "the stalled download reported", 30*time.Second, func() bool { return len(r.reported()) > 0 })
	if err := r.reported()[0]; !strings.Contains(err.Error(), "within") {
		t.Fatalf("the stalled download: %v", err)
	}
	waitFor(t, "rev1 active", 30*time.Second, func() bool { return r.revision() == "rev1" })
}

// TestHeldLongPoll: a long poll the server holds past its wait (a proxy
// that buffers, a server that forgot it) fails after Options.StallTimeout,
// reported, and the next poll gets the new bundle. OPA turns its response
// header timeout off for long polls: the request waited for good, and the
// bundle server's new revisions were never picked up, with nothing said.
func TestHeldLongPoll(t *testing.T) {
	rev1, rev2 := build(t, "rev1", nil, nil), build(t, "rev2", nil, nil)
	var mu sync.Mutex
	held := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.openpolicyagent.bundles")
		if r.Header.Get("If-None-Match") == "" {
			w.Header().Set("ETag", `"e1"`)
			_, _ = w.Write(rev1)
			return
		}
		mu.Lock()
		held++
		hold := held == 1
		mu.Unlock()
		if hold {
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		w.Header().Set("ETag", `"e2"`)
		_, _ = w.Write(rev2)
	}))
	t.Cleanup(srv.Close)
	stallTimeout = time.Second
	t.Cleanup(func() { stallTimeout = 0 })
	r := newRun(t, srv.URL, `, "polling": {"min_delay_seconds": 1, "max_delay_seconds": 1, "long_polling_timeout_seconds": 1}`, "")
	r.start(t)
	waitFor(t, "rev1 active", 30*time.Second, func() bool { return r.revision() == "rev1" })
	waitFor(t, "the held long poll reported", 20*time.Second, func() bool { return len(r.reported()) > 0 })
	if err := r.reported()[0]; !strings.Contains(err.Error(), "long poll") {
		t.Fatalf("the held long poll: %v", err)
	}
	waitFor(t, "rev2 active", 30*time.Second, func() bool { return r.revision() == "rev2" })
}

// TestLongPollNotHeld: a server that says it long-polls (its Content-Type)
// but answers at once — 304 without holding the request, as a static
// server set to that Content-Type does — is asked at most about once a
// second. After a long poll OPA's downloader asks again with no delay: it
// sent thousands of requests a second, for as long as it ran.
func TestLongPollNotHeld(t *testing.T) {
	rev1 := build(t, "rev1", nil, nil)
	var mu sync.Mutex
	requests := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		mu.Unlock()
		w.Header().Set("Content-Type", "application/vnd.openpolicyagent.bundles")
		w.Header().Set("ETag", `"e1"`)
		if r.Header.Get("If-None-Match") == `"e1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(rev1)
	}))
	t.Cleanup(srv.Close)
	r := newRun(t, srv.URL, `, "polling": {"min_delay_seconds": 10, "max_delay_seconds": 10, "long_polling_timeout_seconds": 10}`, "")
	r.start(t)
	waitFor(t, "rev1 active", 30*time.Second, func() bool { return r.revision() == "rev1" })
	mu.Lock()
	before := requests
	mu.Unlock()
	time.Sleep(3 * time.Second)
	mu.Lock()
	n := requests - before
	mu.Unlock()
	if n > 5 {
		t.Fatalf("%d requests in 3 s to a server that does not hold long polls", n)
	}
}

// TestEndlessErrorBody: an error answer (503) whose body never ends fails
// that download, reported, and the next poll gets the bundle. OPA's
// downloader drains a response's body before it returns (to reuse the
// connection): it drained forever, and polling stopped with nothing said.
func TestEndlessErrorBody(t *testing.T) {
	good := build(t, "rev1", nil, nil)
	var mu sync.Mutex
	endless := 1
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		bad := endless > 0
		endless--
		mu.Unlock()
		if bad {
			w.WriteHeader(http.StatusServiceUnavailable)
			chunk := bytes.Repeat([]byte("x"), 32<<10)
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
				if _, err := w.Write(chunk); err != nil {
					return
				}
				w.(http.Flusher).Flush()
				time.Sleep(10 * time.Millisecond)
			}
			return
		}
		w.Header().Set("ETag", `"e1"`)
		_, _ = w.Write(good)
	}))
	t.Cleanup(srv.Close)
	stallTimeout = time.Second
	t.Cleanup(func() { stallTimeout = 0 })
	r := newRun(t, srv.URL, fastPolling, "")
	r.start(t)
	waitFor(t, "the 503 reported", 30*time.Second, func() bool { return len(r.reported()) > 0 })
	if err := r.reported()[0]; !strings.Contains(err.Error(), "Service Unavailable") {
		t.Fatalf("the 503: %v", err)
	}
	waitFor(t, "rev1 active", 30*time.Second, func() bool { return r.revision() == "rev1" })
}

// TestQueryHidden: a resource's query (a presigned URL's signature, a
// token) is in no reported error — the report is /health?bundles'
// last_error, open to anyone — nor in what the poller logs.
func TestQueryHidden(t *testing.T) {
	addr := harness.ReservePort(t).Addr // down: the download fails with its URL in the error
	ctx := context.Background()
	mgr, err := management.New(ctx, []byte(`{"services": {"bundles": {"url": "http://`+addr+`"}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Stop(ctx) })
	src, err := bundlepoll.ParseConfig([]byte(`{"permatrix": {"service": "bundles", "resource": "b.tar.gz?X-Amz-Signature=s3cr3t&X-Amz-Expires=60"`+fastPolling+`}}`),
		mgr.Plugins().Services(), mgr.Plugins().PublicKeys())
	if err != nil {
		t.Fatal(err)
	}
	var logs harness.LockedBuffer
	var mu sync.Mutex
	var reported []error
	status := mgr.BundleStatus("permatrix")
	p, err := bundlepoll.New(bundlepoll.Options{Source: src, Manager: mgr, Activate: opa.NewEngine(store.NewMemory()).Activate,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Status: status,
		Report: func(err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				reported = append(reported, err)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	p.Start(ctx)
	t.Cleanup(func() { p.Stop(ctx) })
	waitFor(t, "the failure reported", 30*time.Second, func() bool { mu.Lock(); defer mu.Unlock(); return len(reported) > 0 })
	mu.Lock()
	msg := reported[0].Error()
	mu.Unlock()
	if strings.Contains(msg, "s3cr3t") || !strings.Contains(msg, "connection refused") {
		t.Errorf("reported: %s", msg)
	}
	// The status a control plane is sent (status section) too.
	if st := status.Status(); strings.Contains(st.Message, "s3cr3t") || !strings.Contains(st.Message, "connection refused") || st.Code != "bundle_error" {
		t.Errorf("status: %+v", st)
	}
	if strings.Contains(src.Resource(), "s3cr3t") {
		t.Errorf("Resource(), which serve logs: %s", src.Resource())
	}
	if l := logs.String(); strings.Contains(l, "s3cr3t") || !strings.Contains(l, "b.tar.gz") {
		t.Errorf("logged:\n%s", l)
	}
}

// statusServer is a control plane's status API: it keeps the bundle
// status of every report POSTed, by path.
type statusServer struct {
	mu      sync.Mutex
	reports []statusReport
}

type statusReport struct {
	path   string
	bundle bundleStatus
}

// bundleStatus is OPA's bundle status, by its JSON names.
type bundleStatus struct {
	Name                     string      `json:"name"`
	ActiveRevision           string      `json:"active_revision"`
	LastSuccessfulActivation time.Time   `json:"last_successful_activation"`
	LastSuccessfulDownload   time.Time   `json:"last_successful_download"`
	LastSuccessfulRequest    time.Time   `json:"last_successful_request"`
	LastRequest              time.Time   `json:"last_request"`
	Code                     string      `json:"code"`
	Message                  string      `json:"message"`
	Errors                   []any       `json:"errors"`
	HTTPCode                 json.Number `json:"http_code"`
}

func (s *statusServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Bundles map[string]bundleStatus `json:"bundles"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reports = append(s.reports, statusReport{r.URL.Path, body.Bundles["permatrix"]})
}

// last is the last bundle status POSTed (ok false before any).
func (s *statusServer) last() (statusReport, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.reports) == 0 {
		return statusReport{}, false
	}
	return s.reports[len(s.reports)-1], true
}

// TestStatusReported: with OPA's status plugin on the manager, a control
// plane is sent the bundle's status at every outcome: the revision
// activated; the next revision; a refused bundle's error beside the
// revision still active; a 304's successful request.
func TestStatusReported(t *testing.T) {
	bs := newBundleServer()
	bs.set(build(t, "rev1", nil, nil), "e1")
	cp := &statusServer{}
	mux := http.NewServeMux()
	mux.Handle("/bundles/", bs)
	mux.Handle("POST /status/", cp)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close) // after the poller's Stop (cleanups run last first)
	ctx := context.Background()
	mgr, err := management.New(ctx, []byte(`{"services": {"bundles": {"url": "`+srv.URL+`"}, "cp": {"url": "`+srv.URL+`"}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mgr.Stop(ctx) })
	if err := mgr.EnableStatus([]byte(`{"service": "cp", "partition_name": "p1"}`)); err != nil {
		t.Fatal(err)
	}
	src, err := bundlepoll.ParseConfig([]byte(`{"permatrix": {"service": "bundles", "resource": "bundles/permatrix.tar.gz"`+fastPolling+`}}`), mgr.Plugins().Services(), nil)
	if err != nil {
		t.Fatal(err)
	}
	engine := opa.NewEngine(store.NewMemory())
	p, err := bundlepoll.New(bundlepoll.Options{Source: src, Manager: mgr, Activate: engine.Activate, Status: mgr.BundleStatus("permatrix")})
	if err != nil {
		t.Fatal(err)
	}
	if err := mgr.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p.Start(ctx)
	t.Cleanup(func() { p.Stop(ctx) })
	lastIs := func(what string, ok func(bundleStatus) bool) bundleStatus {
		t.Helper()
		waitFor(t, what, 30*time.Second, func() bool { r, any := cp.last(); return any && ok(r.bundle) })
		r, _ := cp.last()
		if r.path != "/status/p1" {
			t.Errorf("POSTed to %s", r.path)
		}
		return r.bundle
	}

	st := lastIs("rev1 reported", func(s bundleStatus) bool { return s.ActiveRevision == "rev1" })
	if st.Name != "permatrix" || st.Code != "" || st.LastSuccessfulActivation.IsZero() || st.LastSuccessfulDownload.IsZero() {
		t.Errorf("rev1: %+v", st)
	}
	// A 304: a later successful request, the download unchanged.
	lastIs("a 304 reported", func(s bundleStatus) bool { return s.LastSuccessfulRequest.After(st.LastSuccessfulDownload) })

	broken := func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "policies", "permatrix", "broken.rego"), []byte("package permatrix.broken\n\nx := no_such_function(1)\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bs.set(build(t, "rev-broken", nil, broken), "e-broken")
	st = lastIs("the refusal reported", func(s bundleStatus) bool { return s.Code != "" })
	if st.Code != "bundle_error" || st.ActiveRevision != "rev1" || !strings.Contains(st.Message+fmt.Sprint(st.Errors), "no_such_function") {
		t.Errorf("refused: %+v", st)
	}
	if rev := engine.Current().BundleRevision(); rev != "rev1" {
		t.Fatalf("%s active after the refusal", rev)
	}

	bs.set(build(t, "rev2", nil, nil), "e2")
	st = lastIs("rev2 reported", func(s bundleStatus) bool { return s.ActiveRevision == "rev2" })
	if st.Code != "" || st.Message != "" {
		t.Errorf("rev2: the error kept: %+v", st)
	}

	// The bundle gone from the server: its HTTP status, as OPA's.
	bs.set(nil, "gone")
	st = lastIs("the 404 reported", func(s bundleStatus) bool { return s.Code != "" })
	if st.HTTPCode != "404" || st.ActiveRevision != "rev2" {
		t.Errorf("404: %+v", st)
	}
}
