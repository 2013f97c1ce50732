package opa

import (
	"bytes"
	"context"
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
