package opa

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/http"
	neturl "net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/redact"
)

// Roots are the data roots a permatrix bundle owns: the policies' packages
// and the system catalogs. data.store belongs to the assignment store and is
// never part of a bundle.
var Roots = []string{"permatrix", "systems"}

// LogRoot is the root of OPA's decision-log policies (data.system.log.mask
// and .drop): a bundle that ships them owns it too.
const LogRoot = "system/log"

var logPackage = ast.MustParseRef("data.system.log")

// Bundle is a policy bundle: Rego modules and data (the system catalogs),
// with a revision. It hides OPA's bundle type from the rest of permatrix.
type Bundle struct{ b *bundle.Bundle }

// Revision is the manifest's revision (for a repository tree, a digest of
// its content).
func (b *Bundle) Revision() string { return b.b.Manifest.Revision }

// SetRevision overrides the manifest's revision.
func (b *Bundle) SetRevision(rev string) { b.b.Manifest.Revision = rev }

// ModuleSources are the Rego modules by path.
func (b *Bundle) ModuleSources() map[string]string {
	out := make(map[string]string, len(b.b.Modules))
	for _, m := range b.b.Modules {
		out[m.Path] = string(m.Raw)
	}
	return out
}

// withModules returns a copy of b that also holds ms (parsed here, so that
// an error names the module).
func (b *Bundle) withModules(ms []ModuleSource) (*Bundle, error) {
	c := *b.b
	c.Modules = slices.Clone(c.Modules)
	for _, m := range ms {
		parsed, err := ast.ParseModuleWithOpts(m.Name, m.Source, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, err
		}
		c.Modules = append(c.Modules, bundle.ModuleFile{URL: m.Name, Path: m.Name, Raw: []byte(m.Source), Parsed: parsed})
	}
	return &Bundle{b: &c}, nil
}

// FromOPA wraps a bundle OPA's bundle reader (or downloader) read.
func FromOPA(b *bundle.Bundle) *Bundle { return &Bundle{b: b} }

// Data is the bundle's data document.
func (b *Bundle) Data() map[string]any { return b.b.Data }

// Modules is the number of Rego modules.
func (b *Bundle) Modules() int { return len(b.b.Modules) }

// ReadOptions tune how a bundle source is read.
type ReadOptions struct {
	// Verification, when set, requires a signed bundle and checks it.
	Verification *bundle.VerificationConfig
	// HTTPClient fetches bundle URLs; http.DefaultClient with a timeout if nil.
	HTTPClient *http.Client
	// MaxBytes, if not 0, bounds a .tar.gz file read from disk, gzipped
	// and unpacked, as a URL's download is bounded (MaxFetchBytes): the
	// bundle persisted from a bounded download is read back so.
	MaxBytes int64
}

// ReadDefault returns the bundle embedded in the binary: the repository's
// policies/ and systems/.
func ReadDefault() (*Bundle, error) {
	return ReadLayout(permatrix.DefaultBundle)
}

// ReadBundle reads a bundle from src: a directory (the repository layout,
// see IsLayout, or an OPA bundle directory), a .tar.gz OPA bundle, or an
// http(s) URL serving one. An empty src is the embedded bundle.
func ReadBundle(ctx context.Context, src string, opts ReadOptions) (*Bundle, error) {
	switch {
	case src == "" && opts.Verification != nil:
		return nil, errors.New("bundle verification needs a signed bundle (--bundle FILE.tar.gz, a bundle directory or URL); the embedded one is not signed")
	case src == "":
		return ReadDefault()
	case strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://"):
		return fetch(ctx, src, opts)
	}
	fi, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", src, err)
	}
	if fi.IsDir() {
		if IsLayout(src) {
			if opts.Verification != nil {
				return nil, fmt.Errorf("bundle %s: a policies/ + systems/ tree is not signed and cannot be verified; build a signed bundle with `permatrix bundle build --signing-key`", src)
			}
			return ReadLayout(os.DirFS(src))
		}
		return readBundle(bundle.NewDirectoryLoader(src), src, opts)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", src, err)
	}
	defer f.Close()
	if opts.MaxBytes > 0 {
		raw, err := io.ReadAll(io.LimitReader(f, opts.MaxBytes+1))
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", src, err)
		}
		if int64(len(raw)) > opts.MaxBytes {
			return nil, fmt.Errorf("bundle %s is more than %d bytes", src, opts.MaxBytes)
		}
		if err := checkUnpacked(raw, src, opts.MaxBytes); err != nil {
			return nil, err
		}
		return readBundle(bundle.NewTarballLoaderWithBaseURL(bytes.NewReader(raw), src), src, opts)
	}
	return readBundle(bundle.NewTarballLoaderWithBaseURL(f, src), src, opts)
}

// IsLayout reports whether dir is laid out like this repository: Rego under
// policies/ and the catalogs as systems/<id>/data.json (data.systems["<id>"],
// where an OPA bundle directory places them, so that the repository root
// is one for `opa test -b .`), or as data/systems/<id>/data.json (the
// layout before the catalogs moved to the root, read as `opa eval -d data`
// reads it). A directory with a .manifest is an OPA bundle directory: its
// manifest (revision, roots) and signatures count.
func IsLayout(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, bundle.ManifestExt)); err == nil {
		return false
	}
	return len(layoutPaths(os.DirFS(dir))) > 1
}

// layoutPaths are the loader paths of a layout's policies and catalogs:
// "policies", then "systems:systems" (systems/ placed under data.systems)
// and "data" for what exists; just "policies" if no catalogs.
func layoutPaths(fsys fs.FS) []string {
	isDir := func(name string) bool {
		fi, err := fs.Stat(fsys, name)
		return err == nil && fi.IsDir()
	}
	if !isDir("policies") {
		return nil
	}
	paths := []string{"policies"}
	if isDir("systems") {
		paths = append(paths, "systems:systems")
	}
	if isDir("data") {
		paths = append(paths, "data")
	}
	return paths
}

// MaxFetchBytes bounds a bundle read from a URL, unpacked (serve's
// default size_limit_bytes for a downloaded bundle, internal/bundlepoll).
const MaxFetchBytes = 64 << 20

func fetch(ctx context.Context, url string, opts ReadOptions) (*Bundle, error) {
	client := opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	// The URL as errors and file locations name it: a presigned URL's
	// signature and a password stay out of the log.
	name := redact.URL(url)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, unwrapURLError(err))
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bundle %s: HTTP %s", name, resp.Status)
	}
	// OPA's reader holds every file of a tarball at once, each up to 1 GiB:
	// the download is bounded, and so is what it unpacks to.
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxFetchBytes+1))
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, unwrapURLError(err))
	}
	if len(body) > MaxFetchBytes {
		return nil, fmt.Errorf("bundle %s is more than %d bytes", name, MaxFetchBytes)
	}
	if err := checkUnpacked(body, name, MaxFetchBytes); err != nil {
		return nil, err
	}
	return readBundle(bundle.NewTarballLoaderWithBaseURL(bytes.NewReader(body), name), name, opts)
}

// unwrapURLError is err without net/http's *url.Error, whose message
// repeats the URL whole.
func unwrapURLError(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// checkUnpacked checks that a .tar.gz held in memory unpacks to at most
// maxBytes: a small gzip stream can unpack to gigabytes.
func checkUnpacked(raw []byte, name string, maxBytes int64) error {
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("bundle %s: not a .tar.gz bundle: %w", name, err)
	}
	n, err := io.Copy(io.Discard, io.LimitReader(zr, maxBytes+1))
	if err != nil {
		return fmt.Errorf("bundle %s: not a .tar.gz bundle: %w", name, err)
	}
	if n > maxBytes {
		return fmt.Errorf("bundle %s unpacks to more than %d bytes", name, maxBytes)
	}
	return nil
}

func readBundle(dl bundle.DirectoryLoader, name string, opts ReadOptions) (*Bundle, error) {
	// Annotations are kept: the entrypoint annotations say what the Data API
	// serves without the admin token.
	r := bundle.NewCustomReader(dataNamesLoader{dl}).WithRegoVersion(ast.RegoV1).WithProcessAnnotations(true)
	if opts.Verification != nil {
		r = r.WithBundleVerificationConfig(opts.Verification)
	} else {
		r = r.WithSkipBundleVerification(true)
	}
	b, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", name, err)
	}
	return &Bundle{b: &b}, nil
}

// ReadLayout builds a bundle from a tree laid out like this repository (see
// IsLayout): Rego under policies/ (tests left out) and the catalogs under
// systems/ (or data/), placed by their directory. Its revision is a digest
// of the content, so the same tree always has the same revision.
func ReadLayout(fsys fs.FS) (*Bundle, error) {
	paths := layoutPaths(fsys)
	if len(paths) < 2 {
		return nil, errors.New("not a permatrix tree: want policies/ (Rego) and systems/<id>/data.json (the catalogs)")
	}
	if err := checkLayoutData(fsys, paths); err != nil {
		return nil, err
	}
	res, err := loader.NewFileLoader().
		WithFS(fsys).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		Filtered(paths, func(abspath string, info fs.FileInfo, _ int) bool {
			return !info.IsDir() && strings.HasSuffix(info.Name(), "_test.rego")
		})
	if err != nil {
		return nil, err
	}
	b := &bundle.Bundle{Data: res.Documents}
	digest := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(res.Modules)) {
		m := res.Modules[name]
		rel := path.Clean(strings.TrimPrefix(filepath.ToSlash(m.Name), "/"))
		b.Modules = append(b.Modules, bundle.ModuleFile{URL: rel, Path: rel, Raw: m.Raw, Parsed: m.Parsed})
		fmt.Fprintf(digest, "%s\x00%s\x00", rel, m.Raw)
	}
	data, err := json.Marshal(b.Data)
	if err != nil {
		return nil, err
	}
	digest.Write(data)
	roots := append([]string(nil), Roots...)
	for _, m := range b.Modules {
		if m.Parsed.Package.Path.HasPrefix(logPackage) {
			roots = append(roots, LogRoot)
			break
		}
	}
	b.Manifest = bundle.Manifest{
		Revision:    "sha256:" + hex.EncodeToString(digest.Sum(nil))[:16],
		Roots:       &roots,
		RegoVersion: regoV1(),
	}
	return &Bundle{b: b}, nil
}

func regoV1() *int {
	v := 1
	return &v
}

// ReadTarball reads a .tar.gz OPA bundle held in memory (an upload), after
// checking that it unpacks to at most maxBytes: a small gzip stream can
// unpack to gigabytes. name is for messages.
func ReadTarball(raw []byte, name string, maxBytes int64) (*Bundle, error) {
	if err := checkUnpacked(raw, name, maxBytes); err != nil {
		return nil, err
	}
	return readBundle(bundle.NewTarballLoaderWithBaseURL(bytes.NewReader(raw), name), name, ReadOptions{})
}

// Calls lists where the bundle's modules call any of the builtins named
// ("http.send"), as "file:row name". Rego has no dynamic calls, so a
// builtin no module names is never called: a bundle from an untrusted
// source can be refused network builtins before it is compiled.
func (b *Bundle) Calls(builtins ...string) []string {
	var out []string
	for _, m := range b.b.Modules {
		parsed := m.Parsed
		if parsed == nil {
			var err error
			if parsed, err = ast.ParseModuleWithOpts(m.Path, string(m.Raw), ast.ParserOptions{RegoVersion: ast.RegoV1}); err != nil {
				continue // Compile reports it
			}
		}
		ast.WalkTerms(parsed, func(t *ast.Term) bool {
			var op ast.Ref
			switch v := t.Value.(type) {
			case ast.Call:
				op, _ = v[0].Value.(ast.Ref)
			case ast.Ref:
				op = v // an operator in an expression (x := http.send(…) parses as a call; a bare ref may name it too)
			}
			if op != nil && slices.Contains(builtins, op.String()) {
				where := m.Path
				if t.Location != nil {
					where = fmt.Sprintf("%s:%d", t.Location.File, t.Location.Row)
				}
				out = append(out, where+" "+op.String())
			}
			return false
		})
	}
	slices.Sort(out)
	return slices.Compact(out)
}
