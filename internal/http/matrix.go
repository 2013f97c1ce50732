package http

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/citation"
	"github.com/permatrix/permatrix/internal/matrix"
	"github.com/permatrix/permatrix/internal/opa"
)

// The matrix endpoints show what the policies decide, never what the store
// holds: every cell is decided for a probe user in a probe store of its
// own (internal/matrix). So they need no token, like GET /v1/systems —
// except the candidate diff, which compiles and runs Rego the caller
// uploads, and so is the operator's.

// matrixBuildTimeout bounds one matrix computation. It runs detached from
// the request that started it (others may be waiting for it, and the
// result is kept), so a client that gives up does not waste it.
const matrixBuildTimeout = 2 * time.Minute

// candidateMaxBytes bounds what an uploaded candidate bundle unpacks to.
// Parsing and compiling it costs up to ~300 bytes of memory a byte of
// dense Rego (a module of one array of {}: 3.9 MB of it took 1.3 GB) and
// ~40 a byte of dense JSON; at 64 MiB a 61 KB upload took serve to 2.5 GB.
// The repository's bundle unpacks to ~190 KB: 1 MiB is five times that,
// and at most ~300 MB however it is filled.
const candidateMaxBytes = 1 << 20

// networkBuiltins are refused in uploaded candidate bundles: evaluating
// them would make the server reach out on the uploader's behalf (the JSON
// Schema builtins load a schema's $ref from any host, or file).
var networkBuiltins = []string{"http.send", "net.lookup_ip_addr", "opa.runtime", "json.match_schema", "json.verify_schema"}

// matrices keeps the matrices of the serving policy, computed once per
// compiled policy (opa.Policy.Generation) and system. Not per bundle
// revision: that is what a manifest says, and a bundle rebuilt without a
// new one — or without any — keeps it while deciding otherwise.
type matrices struct {
	mu         sync.Mutex
	generation uint64
	bySystem   map[string]*matrixEntry
}

type matrixEntry struct {
	done chan struct{}
	m    *matrix.Matrix
	err  error
	// The answer of GET /v1/matrix/{system} encoded, compact and indented
	// (?pretty): encoded once, when first asked. Blue Prism's is some 4 MB,
	// ~100 ms of encoding and a 4 MB buffer: encoded on every request (which
	// needs no token), a few clients asking it again and again took every
	// CPU and gigabytes of heap.
	answers [2]struct {
		once sync.Once
		b    []byte
		err  error
	}
}

// answer is the entry's matrix with the candidate upload limit, encoded as
// the server's JSON serializer writes it (indented when pretty). The limit
// is the server's, the same on every call.
func (e *matrixEntry) answer(limit int64, pretty bool) ([]byte, error) {
	i := 0
	if pretty {
		i = 1
	}
	a := &e.answers[i]
	a.once.Do(func() {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if pretty {
			enc.SetIndent("", "  ")
		}
		a.err = enc.Encode(matrixAnswer{Matrix: e.m, CandidateUploadLimit: limit})
		a.b = buf.Bytes()
	})
	return a.b, a.err
}

// get returns system's matrix under p, computing it if no request has.
func (ms *matrices) get(ctx context.Context, p *opa.Policy, system string) (*matrix.Matrix, error) {
	e, err := ms.entry(ctx, p, system)
	if err != nil {
		return nil, err
	}
	return e.m, nil
}

// entry is system's matrix entry under p, its matrix computed.
func (ms *matrices) entry(ctx context.Context, p *opa.Policy, system string) (*matrixEntry, error) {
	ms.mu.Lock()
	if ms.generation != p.Generation || ms.bySystem == nil {
		ms.generation, ms.bySystem = p.Generation, map[string]*matrixEntry{}
	}
	e, ok := ms.bySystem[system]
	if !ok {
		e = &matrixEntry{done: make(chan struct{})}
		ms.bySystem[system] = e
		go func() {
			bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), matrixBuildTimeout)
			defer cancel()
			e.m, e.err = matrix.Of(bctx, p, system, matrix.Options{})
			if e.err != nil {
				ms.mu.Lock()
				if ms.bySystem[system] == e {
					delete(ms.bySystem, system) // the next request tries again
				}
				ms.mu.Unlock()
			}
			close(e.done)
		}()
	}
	ms.mu.Unlock()
	select {
	case <-e.done:
		if e.err != nil {
			return nil, e.err
		}
		return e, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// matrixPolicy is the serving policy and the system of the request's path,
// which must be one it knows.
func (s *Server) matrixPolicy(c echo.Context) (*opa.Policy, string, error) {
	p := s.svc.Policy()
	if p == nil {
		return nil, "", permatrix.Errorf(permatrix.EUNAVAILABLE, "no policy bundle loaded")
	}
	system := param(c, "system")
	if _, ok := p.Catalog[system]; !ok {
		return nil, "", p.Catalog.NoSuchSystem(system)
	}
	return p, system, nil
}

// matrixAnswer is a matrix with the largest candidate bundle the server
// takes to compare with it: the body limit, which POST …/diff and POST
// /v1/replay apply to the bundle as sent. A client can then refuse a larger
// file before reading it (the console: a 2 GB file picked by mistake would
// otherwise be read whole into the browser tab, to be refused here).
type matrixAnswer struct {
	*matrix.Matrix
	CandidateUploadLimit int64 `json:"candidate_upload_limit"`
}

// GET /v1/matrix/{system}: the role × action matrix the serving bundle
// decides, as `permatrix matrix SYSTEM --format json` prints it, and the
// candidate upload limit.
func (s *Server) matrix(c echo.Context) error {
	p, system, err := s.matrixPolicy(c)
	if err != nil {
		return err
	}
	e, err := s.matrices.entry(c.Request().Context(), p, system)
	if err != nil {
		return err
	}
	// Encoded once (matrixEntry.answer), indented as c.JSON indents.
	_, pretty := c.QueryParams()["pretty"]
	b, err := e.answer(s.cfg.BodyLimit, pretty || c.Echo().Debug)
	if err != nil {
		return err
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, b)
}

// GET /v1/matrix/{system}/explain?holder=&action=&scope=: one cell decided
// again, traced: the rules whose bodies held and the passages of the
// vendor documents behind it (internal/citation).
func (s *Server) explainCell(c echo.Context) error {
	p, system, err := s.matrixPolicy(c)
	if err != nil {
		return err
	}
	// Each given once, and nothing else (onceEach): QueryParam's first of
	// two explained another cell than the one asked, without a word.
	q, err := onceEach(c, []string{"holder", "action", "scope"}, "")
	if err != nil {
		return err
	}
	holder, action, scope := q.Get("holder"), q.Get("action"), q.Get("scope")
	for _, q := range [][2]string{{"holder", holder}, {"action", action}, {"scope", scope}} {
		if err := permatrix.CheckID(q[0], q[1]); err != nil {
			return err
		}
	}
	if err := s.explaining.take(c); err != nil {
		return err
	}
	defer s.explaining.release()
	cell, rules, ok, err := matrix.Explain(c.Request().Context(), p, system, holder, action, scope, matrix.Options{})
	if err != nil {
		return err
	}
	if !ok {
		return permatrix.Errorf(permatrix.ENOTFOUND, "the matrix of %s has no cell for %q, action %q at scope type %q", system, holder, action, scope)
	}
	return c.JSON(http.StatusOK, map[string]any{
		"system": system, "bundle_revision": p.BundleRevision(), "cell": cell,
		"rules": rules, "citations": citation.Cell(p, system, holder, action, rules),
	})
}

// POST /v1/matrix/{system}/diff with a .tar.gz bundle as the body: the
// cells that change from the serving bundle to that candidate. The
// candidate is compiled beside the serving one, never activated.
func (s *Server) matrixDiff(c echo.Context) error {
	p, system, err := s.matrixPolicy(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	b, release, err := s.candidateBundle(c)
	if err != nil {
		return err
	}
	defer release()
	cand, err := opa.Compile(ctx, b, nil)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return permatrix.Errorf(permatrix.EUNPROCESSABLE, "candidate bundle: %s", err.Error())
	}
	if _, ok := cand.Catalog[system]; !ok {
		return permatrix.Errorf(permatrix.EUNPROCESSABLE, "the candidate bundle has no system %q (it has: %s)", system, strings.Join(cand.Catalog.IDs(), ", "))
	}
	base, err := s.matrices.get(ctx, p, system)
	if err != nil {
		return err
	}
	next, err := matrix.Of(ctx, cand, system, matrix.Options{})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return permatrix.Errorf(permatrix.EUNPROCESSABLE, "candidate bundle: %s", err.Error())
	}
	return c.JSON(http.StatusOK, map[string]any{"diff": matrix.Compare(base, next), "candidate": next})
}

// candidateBundle reads the request's body as an uploaded candidate bundle:
// a .tar.gz within the unpacked bound, calling no network builtin. It
// takes the server's one place for a candidate (s.candidates), before
// reading the body: release gives it back once the candidate's compiling
// and evaluation are done (nil when err is not). Given back here on any
// other way out, a panic included: one held for good would have every
// later upload wait its whole request, then refused.
func (s *Server) candidateBundle(c echo.Context) (b *opa.Bundle, release func(), err error) {
	if err := s.candidates.take(c); err != nil {
		return nil, nil, err
	}
	kept := false
	defer func() {
		if !kept {
			s.candidates.release()
		}
	}()
	if h := testHookCandidate.Load(); h != nil {
		(*h)()
	}
	if b, err = readCandidate(c); err != nil {
		return nil, nil, err
	}
	kept = true
	return b, s.candidates.release, nil
}

// testHookCandidate, set by tests only, runs as a candidate upload takes
// its place.
var testHookCandidate atomic.Pointer[func()]

// readCandidate reads the request's body as a candidate bundle.
func readCandidate(c echo.Context) (*opa.Bundle, error) {
	raw, err := readBody(c)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, permatrix.Errorf(permatrix.EINVALID, "the body must be a .tar.gz OPA bundle (permatrix bundle build -o FILE)")
	}
	b, err := opa.ReadTarball(raw, "candidate", candidateMaxBytes)
	if err != nil {
		return nil, permatrix.Errorf(permatrix.EUNPROCESSABLE, "%s", err.Error())
	}
	if calls := b.Calls(networkBuiltins...); len(calls) > 0 {
		return nil, permatrix.Errorf(permatrix.EUNPROCESSABLE, "the candidate calls builtins that reach the network, which the server does not run for an upload: %s", strings.Join(calls, ", "))
	}
	return b, nil
}

// GET /v1/documents: the vendor documents citations point into.
func (s *Server) documents(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"documents": citation.Names()})
}

// GET /v1/documents/{document}: one vendor document, as plain text.
func (s *Server) document(c echo.Context) error {
	name := param(c, "document")
	text, ok := citation.Text(name)
	if !ok {
		return permatrix.Errorf(permatrix.ENOTFOUND, "no vendor document %q (there are: %s)", name, strings.Join(citation.Names(), ", "))
	}
	c.Response().Header().Set("X-Content-Type-Options", "nosniff")
	return c.Blob(http.StatusOK, "text/plain; charset=utf-8", []byte(text))
}
