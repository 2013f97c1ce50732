package pdp_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/permatrix/permatrix"
)

// Writes judged at once by many goroutines — each verdict's input filled
// into objects a Policy pools (opa's assignInputs) — are each refused in
// the words of their own actor and assignment: a refusal's message, made
// of input values, names no other write's, and a write some goroutine
// may make is made. Under -race it also holds a pooled verdict input to
// being one verdict's at a time.
func TestPooledVerdictInputsRefuseInTheirOwnWords(t *testing.T) {
	ctx := context.Background()
	_, svc := newBoltService(t)
	const suite = "uipath-task-mining-suite"
	var wg sync.WaitGroup
	for g := range 6 {
		wg.Go(func() {
			for i := range 60 {
				// Actors alike by case: one that may write (none: the
				// system), and ones no grant lets write.
				actor := []string{fmt.Sprintf("Actor%d-%d", g, i), fmt.Sprintf("actor%d-%d", g, i), ""}[i%3]
				a := permatrix.Assignment{Subject: fmt.Sprintf("user:s%d-%d", g, i), System: suite, Role: "admin", Scope: permatrix.ServiceScope}
				got, _, err := svc.Assign(ctx, a, actor)
				if actor == "" {
					if err != nil || got.Subject != a.Subject || got.System != suite {
						t.Errorf("%+v by the system: %+v, %v", a, got, err)
						return
					}
					continue
				}
				if permatrix.ErrorCode(err) != permatrix.EFORBIDDEN {
					t.Errorf("%+v by %s: %v, not forbidden", a, actor, err)
					return
				}
				msg := err.Error()
				if !strings.Contains(msg, " "+actor+" may not ") {
					t.Errorf("%+v by %s refused in another's words: %s", a, actor, msg)
					return
				}
				// No other goroutine's or iteration's names.
				for _, other := range []string{"actor", "Actor", "s"} {
					for j := 0; j < 6; j++ {
						if j != g && strings.Contains(msg, fmt.Sprintf("%s%d-", other, j)) {
							t.Errorf("%+v by %s: %s names goroutine %d's write", a, actor, msg, j)
							return
						}
					}
				}
			}
		})
	}
	wg.Wait()
}
