package http

import (
	"net/http"
	"sync/atomic"

	"github.com/labstack/echo/v4"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/store"
)

// GET /v1/systems: every system with its roles, permissions, actions,
// scope types and context keys.
func (s *Server) systems(c echo.Context) error {
	cat := s.svc.Catalog()
	if cat == nil {
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "no policy bundle loaded")
	}
	list := make([]*permatrix.System, 0, len(cat))
	for _, id := range cat.IDs() {
		list = append(list, cat[id])
	}
	return c.JSON(http.StatusOK, map[string]any{"systems": list})
}

// GET /v1/systems/{system}
func (s *Server) system(c echo.Context) error {
	catalog := s.svc.Catalog()
	sys, ok := catalog[param(c, "system")]
	if !ok {
		return catalog.NoSuchSystem(param(c, "system"))
	}
	return c.JSON(http.StatusOK, sys)
}

// GET /v1/subjects/{user}/permissions?system=&resource_type=&resource_id=
// (&min_revision=, or X-Permatrix-Min-Revision: a consistency token, as a
// check's)
func (s *Server) permissions(c echo.Context) error {
	// A filter not read (systems=) answered every system's permissions,
	// one given twice the first's: each is known and given once.
	q, err := onceEach(c, permissionParams, "")
	if err != nil {
		return err
	}
	scope := permatrix.ServiceScope
	if q.Get("resource_type") == "" && q.Get("resource_id") != "" {
		return permatrix.Errorf(permatrix.EINVALID, "resource_id needs resource_type (without both, the permissions are at service scope)")
	}
	if t := q.Get("resource_type"); t != "" {
		// Its shape (an id but for "service", none for it) is the
		// decision point's to check.
		scope = permatrix.Scope{Type: t, ID: q.Get("resource_id")}
	}
	var systems []string
	if sys := q.Get("system"); sys != "" {
		systems = []string{sys}
	}
	min, err := minRevision(c, 0)
	if err != nil {
		return err
	}
	// Its token reached before it takes a place: a listing waiting for
	// one (up to --consistency-timeout) decides nothing meanwhile. Bad
	// input is told first, without a wait.
	if err := permatrix.CheckID("user", param(c, "user")); err != nil {
		return err
	}
	if err := scope.Validate("resource_type", "resource_id"); err != nil {
		return err
	}
	if err := s.svc.Reach(c.Request().Context(), min); err != nil {
		return err
	}
	if err := s.listings.take(c); err != nil {
		return err
	}
	defer s.listings.release()
	if h := testHookListing.Load(); h != nil {
		(*h)()
	}
	list, rev, err := s.svc.Permissions(c.Request().Context(), param(c, "user"), systems, scope, min)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"subject": param(c, "user"), "scope": scope, "revision": rev, "permissions": list})
}

// testHookListing, set by tests only, runs as a listing begins.
var testHookListing atomic.Pointer[func()]

// permissionParams are the query parameters of GET
// /v1/subjects/{user}/permissions.
var permissionParams = []string{"system", "resource_type", "resource_id", "min_revision"}

// readiness is what /health reports and Ready returns, read once: one
// condition decides both, so the gRPC health service and /health never
// disagree.
type readiness struct {
	policy *opa.Policy
	dbErr  error // the store does not answer a snapshot
	store  store.Health
}

func (s *Server) readiness() readiness {
	return readiness{policy: s.svc.Policy(), dbErr: s.svc.Ready(), store: s.svc.StoreHealth()}
}

// err is nil when ready, else why not.
func (r readiness) err() error {
	switch {
	case r.policy == nil:
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "no policy bundle loaded")
	case r.dbErr != nil:
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "the store is not open: %v", r.dbErr)
	case !r.store.Ready:
		return permatrix.Errorf(permatrix.EUNAVAILABLE, "the store is not ready: %s", r.store.Error)
	}
	return nil
}

// Ready is nil when /health answers 200 — the bundle loaded, the store open
// and its disk taking writes — else why it does not: for probes that are
// not HTTP (ext_authz's grpc.health.v1.Health).
func (s *Server) Ready() error { return s.readiness().err() }

// GET /health: 200 once the bundle is loaded and the db open, else 503.
// A store whose disk refused the last write (full, read-only, I/O errors)
// is not ready either: 503 with the cause as store_error, until a write
// commits again or the store's disk probe finds the disk writable
// (internal/bolt). With ?bundles (OPA's convention) it also reports the
// bundle's revision and the last failed reload, if any.
func (s *Server) health(c echo.Context) error {
	r := s.readiness()
	p, st := r.policy, r.store
	body := map[string]any{"status": "ok", "bundle_loaded": p != nil, "db_open": r.dbErr == nil, "store": st}
	status := http.StatusOK
	if st.Error != "" {
		body["store_error"] = st.Error
		body["store_error_at"] = st.ErrorAt
	}
	if r.err() != nil {
		body["status"] = "unavailable"
		status = http.StatusServiceUnavailable
	}
	if _, ok := c.QueryParams()["bundles"]; ok {
		b := map[string]any{}
		if p != nil {
			b["revision"] = p.BundleRevision()
			b["loaded_at"] = p.ActivatedAt.UTC()
		}
		s.mu.Lock()
		if s.bundleErr != nil {
			b["last_error"] = s.bundleErr.Error()
			b["last_error_at"] = s.bundleFail
		}
		s.mu.Unlock()
		body["bundles"] = map[string]any{s.cfg.BundleName: b}
	}
	return c.JSON(status, body)
}

// GET /health/live: the process is up.
func (s *Server) live(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"status": "ok"})
}
