package pdp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/bolt"
	"github.com/permatrix/permatrix/internal/opa"
	"github.com/permatrix/permatrix/internal/pdp"
)

// A consistency token the store does not reach within the timeout is an
// EUNAVAILABLE error naming both revisions (a 503), never an internal
// fault; one it has reached is decided at that revision or later — with
// the decision cache on and off.
func TestConsistencyToken(t *testing.T) {
	for _, cache := range []int{pdp.DefaultCacheSize, 0} {
		t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
			ctx := context.Background()
			db, err := bolt.Open(filepath.Join(t.TempDir(), "p.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			b, err := opa.ReadDefault()
			if err != nil {
				t.Fatal(err)
			}
			svc := pdp.New(db, opa.NewEngine(db), slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			svc.SetCacheSize(cache)
			svc.ConsistencyTimeout = 50 * time.Millisecond
			if _, err := svc.Activate(ctx, b); err != nil {
				t.Fatal(err)
			}
			_, rev, err := svc.Assign(ctx, permatrix.Assignment{Subject: "user:ann", System: "celonis-task-mining", Role: "admin", Scope: permatrix.ServiceScope}, "")
			if err != nil {
				t.Fatal(err)
			}
			c := permatrix.Check{Subject: "ann", System: "celonis-task-mining", Action: "edit_users", MinRevision: rev}
			d, err := svc.Check(ctx, c)
			if err != nil || !d.Allow || d.Revision < rev {
				t.Fatalf("token %d reached: %+v %v", rev, d, err)
			}
			c.MinRevision = rev + 1000
			start := time.Now()
			_, err = svc.Check(ctx, c)
			var pe *permatrix.Error
			if !errors.As(err, &pe) || pe.Code != permatrix.EUNAVAILABLE ||
				!strings.Contains(pe.Message, fmt.Sprint(rev+1000)) || !strings.Contains(pe.Message, fmt.Sprintf("revision %d", rev)) {
				t.Fatalf("token %d not reached: %v", rev+1000, err)
			}
			if waited := time.Since(start); waited < 50*time.Millisecond || waited > 5*time.Second {
				t.Fatalf("waited %s for a token, with a timeout of 50ms", waited)
			}
		})
	}
}
