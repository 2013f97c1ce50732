package bundlepoll_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPersistedBundleBounded: the persisted bundle read back at startup is
// bounded as its download was (size_limit_bytes, the bundle as a whole,
// unpacked). It was read with no bound at all: a bundle.tar.gz in the
// persistence directory replaced by a gzip bomb — a file on disk, damaged
// or hostile — was unpacked whole into memory and activated.
func TestPersistedBundleBounded(t *testing.T) {
	const limit = 512 << 10
	dir := t.TempDir()
	extra := `, "persistence_directory": "` + dir + `"`
	source := fastPolling + `, "persist": true, "size_limit_bytes": ` + strconv.Itoa(limit)
	path := filepath.Join(dir, "bundles", "permatrix", "bundle.tar.gz")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	// A sound one under the limit is activated.
	if err := os.WriteFile(path, build(t, "rev1", nil, nil), 0o600); err != nil {
		t.Fatal(err)
	}
	r := newRun(t, "http://127.0.0.1:1", source, extra)
	if !r.poller.ActivatePersisted(context.Background()) || r.revision() != "rev1" {
		t.Fatalf("the persisted bundle was not activated: %q %v", r.revision(), r.status.Status())
	}

	bomb := withJunk(t, build(t, "rev-bomb", nil, nil), 8, limit-1) // each file under the limit
	if err := os.WriteFile(path, bomb, 0o600); err != nil {
		t.Fatal(err)
	}
	r = newRun(t, "http://127.0.0.1:1", source, extra)
	if r.poller.ActivatePersisted(context.Background()) || r.revision() != "" {
		t.Fatalf("the persisted bomb was activated: %q", r.revision())
	}
	if st := r.status.Status(); st.Code != "bundle_error" || !strings.Contains(fmt.Sprintf("%v %v", st.Message, st.Errors), "bytes") {
		t.Errorf("status of the persisted bomb: %+v", st)
	}
}
