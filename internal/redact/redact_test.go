package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://user:pw@bundles.example/b.tar.gz?X-Amz-Signature=abc", "https://xxxxx@bundles.example/b.tar.gz?redacted"},
		{"https://ghp_s3cr3tToken@github.example/org/b.tar.gz", "https://xxxxx@github.example/org/b.tar.gz"}, // a token as the user name
		{"https://bundles.example/b.tar.gz", "https://bundles.example/b.tar.gz"},
		{"etcd://root:s3cr3t@h1:2379,h2:2379/permatrix", "etcd://xxxxx@h1:2379,h2:2379/permatrix"},
		// url.Parse refuses these (a bad port, a bad escape): hidden as text.
		{"etcd://root:s3cr3t@h1:x/permatrix", "etcd://xxxxx@h1:x/permatrix"},
		{"https://u:s3cr3t@h:x/b?token=s3cr3t#f", "https://xxxxx@h:x/b?redacted#f"},
		{"https://h:x/b%zz?token=s3cr3t", "https://h:x/b%zz?redacted"},
		{"http://a@b@c:x/", "http://xxxxx@c:x/"},
		// A password typed with "#", "/" or "?" unescaped (a generated
		// one): read as a URL, the authority ends inside it, and the rest
		// of the password, "@" and the host are a fragment, a path or a
		// query — or the URL parses, "root:123" its host and port.
		{"etcd://root:Abc#s3cr3t@h1:2379/permatrix", "etcd://xxxxx@h1:2379/permatrix"},
		{"etcd://root:123#s3cr3t@h1:2379/permatrix", "etcd://xxxxx@h1:2379/permatrix"},
		{"etcd://root:s3/cr3t@h1:2379/permatrix", "etcd://xxxxx@h1:2379/permatrix"},
		{"etcd://root:s3cr3t/@h1:2379/permatrix?x=1#f", "etcd://xxxxx@h1:2379/permatrix?redacted#f"},
		// A "?" before the last "@": what follows may be the query.
		{"etcd://root:12?s3cr3t@h1:2379/permatrix", "etcd://xxxxx"},
		{"https://h/b?user=a@b.example&token=s3cr3t", "https://xxxxx"},
		{"bolt:/var/lib/permatrix.db", "bolt:/var/lib/permatrix.db"},
		{"not a url", "not a url"},
		{"", ""},
	} {
		got := URL(c.in)
		if got != c.want {
			t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
		}
		if strings.Contains(got, "s3cr3t") || strings.Contains(got, "cr3t") || strings.Contains(got, "Abc") || strings.Contains(got, "123") || strings.Contains(got, ":12") {
			t.Errorf("URL(%q) shows the secret: %q", c.in, got)
		}
	}
}

func FuzzURL(f *testing.F) {
	for _, s := range []string{"https://u:p@h/x?q=1#f", "etcd://u:p@h:x/p", "//@?#", "a//b@c?d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := URL(s)
		// Whatever else s holds, a query's value is never shown.
		if i := strings.Index(s, "//"); i >= 0 && !strings.Contains(s, "#") {
			if q := strings.Index(s[i:], "?token=SECRET"); q >= 0 && strings.Contains(got, "?token=SECRET") {
				t.Errorf("URL(%q) = %q shows the query", s, got)
			}
		}
	})
}
