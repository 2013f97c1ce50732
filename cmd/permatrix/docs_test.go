package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// etcdOwnFlags are etcd's and etcdctl's flags that docs/fleet.md names
// (the operator's side), not permatrix's.
var etcdOwnFlags = []string{"max-txn-ops", "max-request-bytes", "quota-backend-bytes", "auto-compaction-retention", "client-cert-auth", "prefix", "initial-cluster", "initial-cluster-token", "election-timeout"}

var (
	flagToken   = regexp.MustCompile(`--([a-z][a-z0-9-]*)`)
	envToken    = regexp.MustCompile(`PERMATRIX_[A-Z0-9_]+`)
	headerToken = regexp.MustCompile(`X-Permatrix-[A-Za-z-]+`)
)

// commandFlags are the flag names of a permatrix command ("serve", "store
// copy", …).
func commandFlags(t *testing.T, path string) []string {
	t.Helper()
	cmd, _, err := newRoot().Find(strings.Fields(path))
	if err != nil || cmd.Name() != strings.Fields(path)[len(strings.Fields(path))-1] {
		t.Fatalf("no command %q: %v", path, err)
	}
	var names []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	return names
}

func readDoc(t *testing.T, name string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// Every flag, PERMATRIX_* variable and X-Permatrix-* header docs/fleet.md
// names exists: a flag on serve (or on store copy or import, for theirs),
// a variable that is a serve flag's, a header the HTTP API (or the gateway,
// for proxied requests) reads.
func TestFleetDocNamesWhatExists(t *testing.T) {
	doc := readDoc(t, "docs/fleet.md")
	serve := commandFlags(t, "serve")
	other := append(commandFlags(t, "store copy"), commandFlags(t, "import")...)
	for _, m := range flagToken.FindAllStringSubmatch(doc, -1) {
		name := m[1]
		if strings.HasSuffix(name, "-") { // a family: --etcd-*
			if !slices.ContainsFunc(serve, func(f string) bool { return strings.HasPrefix(f, name) }) {
				t.Errorf("docs/fleet.md names flags --%s*, serve has none", name)
			}
			continue
		}
		if !slices.Contains(serve, name) && !slices.Contains(other, name) && !slices.Contains(etcdOwnFlags, name) {
			t.Errorf("docs/fleet.md names --%s: no such flag on serve, store copy or import", name)
		}
	}
	for _, env := range envToken.FindAllString(doc, -1) {
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(env, "PERMATRIX_")), "_", "-")
		if !slices.Contains(serve, flag) && flag != "<flag>" {
			t.Errorf("docs/fleet.md names %s: serve has no --%s", env, flag)
		}
	}
	var src strings.Builder
	files, _ := filepath.Glob(filepath.Join("..", "..", "internal", "http", "*.go"))
	gw, _ := filepath.Glob(filepath.Join("..", "..", "internal", "gateway", "*.go")) // the proxied requests' headers
	for _, f := range append(files, gw...) {
		if !strings.HasSuffix(f, "_test.go") {
			raw, _ := os.ReadFile(f)
			src.Write(raw)
		}
	}
	for _, h := range headerToken.FindAllString(doc, -1) {
		if !strings.Contains(src.String(), `"`+h+`"`) {
			t.Errorf("docs/fleet.md names the header %s: neither internal/http nor internal/gateway reads it", h)
		}
	}
}

// The README's flags table lists every serve flag, and only serve's.
func TestReadmeFlagsTable(t *testing.T) {
	serve := commandFlags(t, "serve")
	var table []string
	for _, line := range strings.Split(readDoc(t, "README.md"), "\n") {
		if !strings.HasPrefix(line, "| `--") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, m := range flagToken.FindAllStringSubmatch(first, -1) {
			table = append(table, m[1])
		}
	}
	for _, f := range table {
		if !slices.Contains(serve, f) {
			t.Errorf("README's flags table names --%s: serve has no such flag", f)
		}
	}
	for _, f := range serve {
		if f != "help" && !slices.Contains(table, f) {
			t.Errorf("README's flags table does not list serve's --%s", f)
		}
	}
}

// The embedded bundle is policies/ and systems/ (embed.go); data/ holds
// example assignments that no bundle loads. A doc pairing policies/ with
// data/ sends the reader to the wrong directory (docs/performance.md's
// history excepted: the script of the time).
func TestDocsNameTheCatalogDirectory(t *testing.T) {
	pair := regexp.MustCompile("policies/[^/|]{0,16}data/")
	docs, _ := filepath.Glob(filepath.Join("..", "..", "docs", "*.md"))
	for _, name := range append(docs, filepath.Join("..", "..", "README.md"), filepath.Join("..", "..", "bundles", "README.md")) {
		if filepath.Base(name) == "performance.md" {
			continue
		}
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(raw), "\n") {
			if pair.MatchString(line) {
				t.Errorf("%s:%d: the bundle's catalogs are systems/, not data/: %s", name, i+1, line)
			}
		}
	}
}
