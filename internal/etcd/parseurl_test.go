package etcd_test

import (
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/etcd"
)

// TestParseURLHidesCredentials: a store URL with credentials in it is
// refused without repeating the password — the message goes to the
// console and the logs.
func TestParseURLHidesCredentials(t *testing.T) {
	for _, raw := range []string{"etcd://root:s3cr3t@127.0.0.1:2379/pm", "etcds://root:s3cr3t@h1:2379,h2:2379/pm",
		"etcd://root:s3cr3t@h1:x/pm", "http://root:s3cr3t@h1:2379/pm", "etcd://r@t:s3cr3t@h1:2379",
		// A password holding "#", "/" or "?": the URL parses, the
		// password's first part a port, the rest a fragment, a prefix or
		// a query — accepted, it was logged whole as the store.
		"etcd://root:123#s3cr3t@h1:2379/pm", "etcd://root:12/s3cr3t@h1:2379/pm", "etcd://root:12?s3cr3t@h1:2379/pm"} {
		_, _, _, err := etcd.ParseURL(raw)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "xxxxx") {
			t.Errorf("%s: %v", raw, err)
		}
	}
}

// TestPrefixesOverlap: two store URLs share keys when their prefixes, as
// etcd keys, are one or one is inside the other — however the URLs spell
// them — and not when one is only the start of the other's name.
func TestPrefixesOverlap(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"etcd://h:1/p", "etcd://h:1/p", true},
		{"etcd://h:1/p", "etcd://h:1/p/", true},
		{"etcd://h:1//p//", "etcd://h:1/p", true},
		{"etcd://h:1/p", "etcd://h:1/p/x", true},
		{"etcd://h:1/p/x/y", "etcd://h:1/p", true},
		{"etcd://h:1/p/k", "etcd://h:1/p", true}, // its keys are /p/'s data keys
		{"etcd://h:1/p", "etcd://h:1/px", false},
		{"etcd://h:1/px/y", "etcd://h:1/p", false},
		{"etcd://h:1/a/p", "etcd://h:1/p", false},
	} {
		_, pa, _, err := etcd.ParseURL(c.a)
		if err != nil {
			t.Fatal(err)
		}
		_, pb, _, err := etcd.ParseURL(c.b)
		if err != nil {
			t.Fatal(err)
		}
		if got := etcd.PrefixesOverlap(pa, pb); got != c.want {
			t.Errorf("%s (%s) and %s (%s): overlap %v, want %v", c.a, pa, c.b, pb, got, c.want)
		}
	}
}

// TestParseURLRefusesAmbiguousPrefixes: a prefix is a run of etcd key
// bytes, which etcd neither cleans nor splits. A control character
// (%00, %0a) let a prefix hide inside another fleet's keys — /p/k/d%00x/
// names keys that /p/'s claim reads as its own data keys ("k/d" NUL …) —
// and put a NUL or a newline in the logs and the messages; a query or a
// fragment was dropped unread (etcd://h/p?x served /p/); an empty, "." or
// ".." segment looked like a path a shell would clean (/p/../q is under
// /p/, not /q/). Each is refused, saying what to write; the spellings of
// one prefix (leading and trailing slashes, an escaped "/") give the one
// prefix.
func TestParseURLRefusesAmbiguousPrefixes(t *testing.T) {
	for _, c := range []struct{ raw, says string }{
		{"etcd://h:1/p/k/d%00x", `a control character ("\x00")`},
		{"etcd://h:1/p%0a", `a control character ("\n")`},
		{"etcd://h:1/p%09q", `a control character ("\t")`},
		{"etcd://h:1/p%7f", `a control character ("\x7f")`},
		{"etcd://h:1/p%c2%85", `a control character ("\u0085")`},
		{"etcd://h:1/p%ff", "not UTF-8"},
		// Shown as nothing (a zero-width space, a byte order mark, a
		// direction override that turns the rest of a line around), or
		// as a space that is not one: /p/k\u200b/ showed as /p/k/.
		{"etcd://h:1/p/k%E2%80%8B", `a character that does not show as itself ("\u200b")`},
		{"etcd://h:1/p%EF%BB%BFq", `a character that does not show as itself ("\ufeff")`},
		{"etcd://h:1/p%E2%80%AEq", `a character that does not show as itself ("\u202e")`},
		{"etcd://h:1/p%E2%81%A6q", `a character that does not show as itself ("\u2066")`},
		{"etcd://h:1/p%E2%80%A8q", `a character that does not show as itself ("\u2028")`},
		{"etcd://h:1/p%C2%A0q", `a character that does not show as itself ("\u00a0")`},
		{"etcd://h:1/p/../q", `a "." or ".." segment`},
		{"etcd://h:1/p/./q", `a "." or ".." segment`},
		{"etcd://h:1/..", `a "." or ".." segment`},
		{"etcd://h:1/p//q", "an empty segment"},
		{"etcd://h:1/p%2F%2Fq", "an empty segment"},
		{"etcd://h:1/p?x=1", "a query"},
		{"etcd://h:1/p?", "a query"},
		{"etcd://h:1/p#x", "a fragment"},
	} {
		_, prefix, _, err := etcd.ParseURL(c.raw)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%s: prefix %q, %v; want a refusal saying %s", c.raw, prefix, err, c.says)
		}
		if err != nil && strings.ContainsAny(err.Error(), "\x00\n\t\x7f\u200b\ufeff\u202e\u2066\u2028\u00a0") {
			t.Errorf("%s: the refusal holds the control character: %q", c.raw, err)
		}
	}
	for _, raw := range []string{"etcd://h:1/p/q", "etcd://h:1//p/q/", "etcd://h:1/p%2Fq", "etcd://h:1/p/q//"} {
		if _, prefix, _, err := etcd.ParseURL(raw); err != nil || prefix != "/p/q/" {
			t.Errorf("%s: %q %v, want /p/q/", raw, prefix, err)
		}
	}
	// Names that only look like the refused ones are names.
	for raw, want := range map[string]string{"etcd://h:1/p/..q": "/p/..q/", "etcd://h:1/p.": "/p./", "etcd://h:1/pé": "/pé/", "etcd://h:1/p%20q": "/p q/"} {
		if _, prefix, _, err := etcd.ParseURL(raw); err != nil || prefix != want {
			t.Errorf("%s: %q %v, want %s", raw, prefix, err, want)
		}
	}
}
