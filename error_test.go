package permatrix_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/permatrix/permatrix"
)

var allCodes = []string{
	permatrix.EINVALID, permatrix.EUNAUTHORIZED, permatrix.EFORBIDDEN, permatrix.ENOTFOUND,
	permatrix.ECONFLICT, permatrix.ETOOLARGE, permatrix.EHEADERS, permatrix.EUNPROCESSABLE,
	permatrix.EUNAVAILABLE, permatrix.ESTORAGE, permatrix.EINTERNAL,
}

// Every code means one thing: a client that switches on the code of the
// envelope must never see two meanings behind one value.
func TestErrorCodesAreDistinct(t *testing.T) {
	seen := map[string]bool{}
	snake := regexp.MustCompile(`^[a-z]+(_[a-z]+)*$`)
	for _, c := range allCodes {
		if seen[c] {
			t.Errorf("code %q is defined twice", c)
		}
		seen[c] = true
		if !snake.MatchString(c) {
			t.Errorf("code %q is not lower snake case", c)
		}
	}
	if len(seen) != 11 {
		t.Fatalf("%d codes", len(seen))
	}
}

func TestErrorf(t *testing.T) {
	e := permatrix.Errorf(permatrix.ENOTFOUND, "assignment %q not found", "a1")
	if e.Code != permatrix.ENOTFOUND || e.Message != `assignment "a1" not found` || e.Details != nil {
		t.Fatalf("Errorf = %+v", e)
	}
	if got := e.Error(); got != `permatrix: not_found: assignment "a1" not found` {
		t.Fatalf("Error() = %q", got)
	}
	// A message with no arguments is not a format string's victim.
	if got := permatrix.Errorf(permatrix.EINVALID, "%s", "100%d").Message; got != "100%d" {
		t.Fatalf("message = %q", got)
	}
}

func TestErrorCodeThroughWrapping(t *testing.T) {
	base := permatrix.Errorf(permatrix.ECONFLICT, "revision moved")
	wrapped := fmt.Errorf("update: %w", base)
	twice := fmt.Errorf("handler: %w", wrapped)
	joined := errors.Join(errors.New("closing"), twice)

	for name, err := range map[string]error{"direct": base, "wrapped": wrapped, "twice": twice, "joined": joined} {
		if got := permatrix.ErrorCode(err); got != permatrix.ECONFLICT {
			t.Errorf("%s: ErrorCode = %q, want conflict", name, got)
		}
		if got := permatrix.ErrorMessage(err); got != "revision moved" {
			t.Errorf("%s: ErrorMessage = %q, want the *Error's own message, not the wrapping text", name, got)
		}
		var e *permatrix.Error
		if !errors.As(err, &e) || e != base {
			t.Errorf("%s: errors.As does not find the *Error", name)
		}
		if !errors.Is(err, base) {
			t.Errorf("%s: errors.Is(err, base) = false", name)
		}
	}
	// The first *Error in the chain decides: an outer code overrides.
	outer := &permatrix.Error{Code: permatrix.EUNAVAILABLE, Message: "not ready"}
	if got := permatrix.ErrorCode(fmt.Errorf("%w: %w", outer, base)); got != permatrix.EUNAVAILABLE {
		t.Errorf("two codes: ErrorCode = %q, want the outer one", got)
	}
}

// Anything that is not an *Error is a fault: its code is internal and its
// text never reaches a client (it may hold paths, SQL, stack details).
func TestErrorsWithoutCodeAreInternal(t *testing.T) {
	for _, err := range []error{
		errors.New("open /var/lib/permatrix/permatrix.db: permission denied"),
		fmt.Errorf("wrapped: %w", fs.ErrNotExist),
		context.DeadlineExceeded,
	} {
		if got := permatrix.ErrorCode(err); got != permatrix.EINTERNAL {
			t.Errorf("ErrorCode(%v) = %q, want internal", err, got)
		}
		if got := permatrix.ErrorMessage(err); got != "internal error" || strings.Contains(got, "permatrix.db") {
			t.Errorf("ErrorMessage(%v) = %q, want the generic message", err, got)
		}
	}
	if got := permatrix.ErrorCode(nil); got != "" {
		t.Errorf("ErrorCode(nil) = %q, want \"\"", got)
	}
}

// Every code has its own status, and an answer of that status without a
// code is read back as that code; a gateway's error is "unavailable", and
// anything else, or an unknown code, is internal (500).
func TestHTTPStatusAndStatusCode(t *testing.T) {
	seen := map[int]string{}
	for _, code := range allCodes {
		status := permatrix.HTTPStatus(code)
		if other, ok := seen[status]; ok || status < 400 {
			t.Errorf("%s: status %d (also %q)", code, status, other)
		}
		seen[status] = code
		if back := permatrix.StatusCode(status); back != code {
			t.Errorf("%s → %d → %s", code, status, back)
		}
	}
	for status, want := range map[int]string{502: permatrix.EUNAVAILABLE, 504: permatrix.EUNAVAILABLE, 418: permatrix.EINTERNAL, 200: permatrix.EINTERNAL} {
		if got := permatrix.StatusCode(status); got != want {
			t.Errorf("StatusCode(%d) = %s, want %s", status, got, want)
		}
	}
	if got := permatrix.HTTPStatus("no such code"); got != 500 {
		t.Errorf("an unknown code: %d, want 500", got)
	}
}
