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
