package opa

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBundleDataNamedTwice: a catalog's data.json naming a member twice in
// one object — a role defined twice, the second definition the one served
// — is refused, in a policies/ + systems/ tree (serve --bundle DIR, bundle
// build) and in a .tar.gz OPA bundle alike, naming the file; OPA's
// decoder kept the last silently.
func TestBundleDataNamedTwice(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	for _, sub := range []string{"policies", "systems"} {
		if err := os.CopyFS(filepath.Join(dir, sub), os.DirFS(filepath.Join(repoRoot(), sub))); err != nil {
			t.Fatal(err)
		}
	}
	catalog := filepath.Join(dir, "systems", "celonis-task-mining", "data.json")
	raw, err := os.ReadFile(catalog)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBundle(ctx, dir, ReadOptions{}); err != nil {
		t.Fatalf("the tree as it is: %v", err)
	}
	twice := bytes.Replace(raw, []byte(`"roles": {`), []byte(`"roles": {"admin": {"name": "Admin Role", "scopes": ["service"]}}, "roles": {`), 1)
	if bytes.Equal(twice, raw) {
		t.Fatal("no roles in the catalog")
	}
	if err := os.WriteFile(catalog, twice, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadBundle(ctx, dir, ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "duplicate") || !strings.Contains(err.Error(), "celonis-task-mining/data.json") {
		t.Fatalf("tree with a name given twice: %v", err)
	}

	// A catalog in YAML (the loader reads .yaml and .yml as data too).
	if err := os.WriteFile(catalog, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	yamlCatalog := filepath.Join(dir, "systems", "blueprism", "data.json")
	raw, err = os.ReadFile(yamlCatalog)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(yamlCatalog)
	yamlCatalog = strings.TrimSuffix(yamlCatalog, ".json") + ".yaml"
	if err := os.WriteFile(yamlCatalog, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBundle(ctx, dir, ReadOptions{}); err != nil {
		t.Fatalf("the tree with a YAML catalog: %v", err)
	}
	if err := os.WriteFile(yamlCatalog, append([]byte(`{"name": "Shadow", `), bytes.TrimPrefix(bytes.TrimSpace(raw), []byte("{"))...), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadBundle(ctx, dir, ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "already defined") || !strings.Contains(err.Error(), "blueprism/data.yaml") {
		t.Fatalf("YAML catalog with a name given twice: %v", err)
	}

	for _, c := range []struct{ file, edit string }{
		{"data.json", `{"systems":{},`},      // "systems" named twice
		{".manifest", `{"roots":["store"],`}, // "roots" named twice
	} {
		tarballWith(t, c.file, c.edit)
	}
}

// tarballWith writes the default bundle as a .tar.gz with file's object
// begun by edit, and checks that ReadBundle refuses it naming the file.
func tarballWith(t *testing.T, file, edit string) {
	t.Helper()
	ctx := context.Background()
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	tw := tar.NewWriter(zw)
	zr, err := gzip.NewReader(bytes.NewReader(tarball(t)))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		if strings.TrimPrefix(h.Name, "/") == file {
			found = true
			body = append([]byte(edit), bytes.TrimPrefix(bytes.TrimSpace(body), []byte("{"))...)
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write(body)
	}
	tw.Close()
	zw.Close()
	if !found {
		t.Fatalf("no %s in the bundle", file)
	}
	bundleFile := filepath.Join(t.TempDir(), "bundle.tar.gz")
	if err := os.WriteFile(bundleFile, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = ReadBundle(ctx, bundleFile, ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "duplicate") || !strings.Contains(err.Error(), file) {
		t.Fatalf("tarball whose %s names a member twice: %v", file, err)
	}
}
