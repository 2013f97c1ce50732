package opa_test

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

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
)

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

func tarball(t *testing.T) []byte {
	t.Helper()
	b, err := opa.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compiles(t *testing.T, b *bundle.Bundle) *opa.Policy {
	t.Helper()
	p, err := opa.Compile(context.Background(), b, &permatrix.State{})
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
	def, err := opa.LoadDefault()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range def.Modules {
		if strings.HasSuffix(m.Path, "_test.rego") {
			t.Fatalf("the served bundle holds test file %s", m.Path)
		}
	}

	dir, err := opa.Load(ctx, repoRoot(), opa.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dir.Manifest.Revision != def.Manifest.Revision {
		t.Fatalf("repo dir %s and embedded %s differ", dir.Manifest.Revision, def.Manifest.Revision)
	}
	compiles(t, dir)

	file := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(file, tarball(t), 0o644); err != nil {
		t.Fatal(err)
	}
	tb, err := opa.Load(ctx, file, opa.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if tb.Manifest.Revision != def.Manifest.Revision {
		t.Fatalf("tarball revision %q", tb.Manifest.Revision)
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
	ub, err := opa.Load(ctx, srv.URL+"/bundle.tar.gz", opa.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	compiles(t, ub)
	if _, err := opa.Load(ctx, srv.URL+"/missing", opa.LoadOptions{}); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("missing URL: %v", err)
	}
}

func TestCompileRejectsBadBundles(t *testing.T) {
	ctx := context.Background()
	b, _ := opa.LoadDefault()
	withStore := *b
	withStore.Data = map[string]any{"systems": b.Data["systems"], "store": map[string]any{}}
	if _, err := opa.Compile(ctx, &withStore, &permatrix.State{}); err == nil || !strings.Contains(err.Error(), "store") {
		t.Fatalf("bundle data under store: %v", err)
	}
	broken := *b
	broken.Modules = append(append([]bundle.ModuleFile(nil), b.Modules...), bundle.ModuleFile{Path: "broken.rego", Raw: []byte("package permatrix.broken\n\nx := y\n")})
	_, err := opa.Compile(ctx, &broken, &permatrix.State{})
	if err == nil || !strings.Contains(err.Error(), "broken.rego:3") {
		t.Fatalf("broken module should fail with file:line: %v", err)
	}
	noSystems := *b
	noSystems.Data = map[string]any{}
	if _, err := opa.Compile(ctx, &noSystems, &permatrix.State{}); err == nil {
		t.Fatal("a bundle without systems compiled")
	}
}

func TestLoadKeepsServingOnError(t *testing.T) {
	e := load(t, &permatrix.State{})
	before := e.Current()
	b, _ := opa.LoadDefault()
	broken := *b
	broken.Modules = append(append([]bundle.ModuleFile(nil), b.Modules...), bundle.ModuleFile{Path: "x.rego", Raw: []byte("package permatrix\n\ndecision contains 1\n")})
	if _, err := e.Load(context.Background(), &broken, func() (*permatrix.State, error) { return &permatrix.State{}, nil }); err == nil {
		t.Fatal("conflicting rule compiled")
	}
	if e.Current() != before {
		t.Fatal("a failed load replaced the serving policy")
	}
}
