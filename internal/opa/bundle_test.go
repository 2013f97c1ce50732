package opa

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/bundle"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func tarball(t *testing.T) []byte {
	t.Helper()
	b, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b.b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compiles(t *testing.T, b *Bundle) *Policy {
	t.Helper()
	p, err := Compile(context.Background(), b, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Catalog["celonis-task-mining"]; !ok {
		t.Fatal("no celonis-task-mining in the catalog")
	}
	return p
}

func TestLoadSources(t *testing.T) {
	ctx := context.Background()
	def, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range def.b.Modules {
		if strings.HasSuffix(m.Path, "_test.rego") {
			t.Fatalf("the served bundle holds test file %s", m.Path)
		}
	}

	dir, err := ReadBundle(ctx, repoRoot(), ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dir.Revision() != def.Revision() {
		t.Fatalf("repo dir %s and embedded %s differ", dir.Revision(), def.Revision())
	}
	compiles(t, dir)

	file := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(file, tarball(t), 0o644); err != nil {
		t.Fatal(err)
	}
	tb, err := ReadBundle(ctx, file, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tb.Revision() != def.Revision() {
		t.Fatalf("tarball revision %q", tb.Revision())
	}
	compiles(t, tb)

	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/bundle.tar.gz" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(tarball(t))
	}))
	defer srv.Close()
	ub, err := ReadBundle(ctx, srv.URL+"/bundle.tar.gz", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	compiles(t, ub)
	if _, err := ReadBundle(ctx, srv.URL+"/missing", ReadOptions{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing URL: %v", err)
	}
}

func TestCompileRejectsBadBundles(t *testing.T) {
	ctx := context.Background()
	b, _ := ReadDefault()
	withStore := *b.b
	withStore.Data = map[string]any{"systems": b.b.Data["systems"], "store": map[string]any{}}
	if _, err := Compile(ctx, &Bundle{&withStore}, nil); err == nil || !strings.Contains(err.Error(), "store") {
		t.Fatalf("bundle data under store: %v", err)
	}
	broken := *b.b
	broken.Modules = append(append([]bundle.ModuleFile(nil), b.b.Modules...), bundle.ModuleFile{Path: "broken.rego", Raw: []byte("package permatrix.broken\n\nx := y\n")})
	_, err := Compile(ctx, &Bundle{&broken}, nil)
	if err == nil || !strings.Contains(err.Error(), "broken.rego:3") {
		t.Fatalf("broken module should fail with file:line: %v", err)
	}
	noSystems := *b.b
	noSystems.Data = map[string]any{}
	if _, err := Compile(ctx, &Bundle{&noSystems}, nil); err == nil {
		t.Fatal("a bundle without systems compiled")
	}
}

func TestLoadKeepsServingOnError(t *testing.T) {
	e := NewEngine(nil)
	b, _ := ReadDefault()
	before, err := e.Activate(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	broken := *b.b
	broken.Modules = append(append([]bundle.ModuleFile(nil), b.b.Modules...), bundle.ModuleFile{Path: "x.rego", Raw: []byte("package permatrix\n\ndecision contains 1\n")})
	if _, err := e.Activate(context.Background(), &Bundle{&broken}); err == nil {
		t.Fatal("conflicting rule compiled")
	}
	if e.Current() != before {
		t.Fatal("a failed load replaced the serving policy")
	}
}

// TestFetchBounded: a bundle URL (permatrix check, matrix, import, replay
// --bundle URL) is read as serve reads a download: at most MaxFetchBytes
// unpacked. Each file was bounded only by OPA's 1 GiB, and OPA's reader
// holds them all: a megabyte of gzipped zeros made a gigabyte.
func TestFetchBounded(t *testing.T) {
	b, err := ReadDefault()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	var good bytes.Buffer
	if err := bundle.NewWriter(&good).Write(*b.b); err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(&good)
	if err != nil {
		t.Fatal(err)
	}
	for tr := tar.NewReader(zr); ; {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		_ = tw.WriteHeader(h)
		_, _ = io.Copy(tw, tr)
	}
	junk := make([]byte, MaxFetchBytes/2)
	for _, name := range []string{"/junk/a.bin", "/junk/b.bin"} {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(junk)), Typeflag: tar.TypeReg})
		_, _ = tw.Write(junk)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(buf.Bytes()) }))
	defer srv.Close()
	if _, err := ReadBundle(context.Background(), srv.URL+"/bundle.tar.gz", ReadOptions{}); err == nil || !strings.Contains(err.Error(), "unpacks to more than") {
		t.Fatalf("a %d-byte download of %d MiB unpacked: %v", buf.Len(), 2*len(junk)>>20, err)
	}
}

// A bundle URL's secrets (a presigned signature, a password) stay out of
// the errors of its download: they go to the console and the log.
func TestFetchErrorsHideTheURLsSecrets(t *testing.T) {
	gone := httptest.NewServer(http.NotFoundHandler())
	defer gone.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, base := range []string{gone.URL, closed.URL} {
		u := strings.Replace(base, "http://", "http://user:s3cr3t-pw@", 1) + "/b.tar.gz?X-Amz-Signature=s3cr3t-sig"
		_, err := ReadBundle(context.Background(), u, ReadOptions{})
		if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "/b.tar.gz?redacted") {
			t.Errorf("%s: %v", base, err)
		}
	}
}
