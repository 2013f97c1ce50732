package permatrix_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/permatrix/permatrix"
)

// hostileIDs are ids no layer may keep: what a client can put in a JSON
// string, a path parameter (%FF), a header (obs-text) or a JWT claim.
var hostileIDs = map[string]string{
	"empty":                 "",
	"NUL":                   "\x00",
	"NUL inside":            "al\x00ice",
	"newline":               "alice\nINFO forged log line",
	"carriage return":       "alice\r",
	"tab":                   "al\tice",
	"escape (terminal)":     "\x1b[31malice",
	"DEL":                   "alice\x7f",
	"invalid UTF-8 (0xff)":  "\xff",
	"invalid UTF-8 (0xfe)":  "al\xfeice",
	"truncated UTF-8":       "\xe2\x82",
	"surrogate half (CESU)": "\xed\xa0\x80",
	"overlong slash":        "\xc0\xaf",
	"257 bytes":             strings.Repeat("a", permatrix.MaxIDBytes+1),
	"65 four-byte runes":    strings.Repeat("😀", 65),
}

// usableIDs are ids the contract allows (a non-empty string of at most 256
// bytes): case, spaces, punctuation and any printable Unicode are the
// client's business.
var usableIDs = map[string]string{
	"ascii":                 "alice",
	"case variant":          "Alice",
	"upper":                 "ALICE",
	"one byte":              "a",
	"a space":               " ",
	"whitespace around":     " alice ",
	"colon":                 "user:alice",
	"slash":                 "a/b",
	"dots":                  "..",
	"percent":               "%FF",
	"email":                 "alice@example.com",
	"latin-1 letter":        "é",
	"cjk":                   "用户",
	"emoji":                 "😀",
	"replacement character": "\ufffd", // a valid rune, written as such
	"256 bytes":             strings.Repeat("a", permatrix.MaxIDBytes),
	// C1 characters are not refused: a store written before may hold them
	// in assignments, and store.Verify would then call it damaged.
	"C1 NEL (U+0085)":    "alice\u0085bob",
	"64 four-byte runes": strings.Repeat("😀", 64),
}

func TestValidID(t *testing.T) {
	for name, id := range hostileIDs {
		if permatrix.ValidID(id) {
			t.Errorf("%s: ValidID(%q) = true, want false", name, id)
		}
	}
	for name, id := range usableIDs {
		if !permatrix.ValidID(id) {
			t.Errorf("%s: ValidID(%q) = false, want true", name, id)
		}
	}
}

// Two distinct invalid UTF-8 ids would be written as the same JSON string
// ("\ufffd") by every JSON encoder: stored, they made GET /v1/export a
// document with duplicate keys that no longer says what the server decides.
func TestValidIDRefusesWhatJSONCannotCarry(t *testing.T) {
	for _, id := range []string{"\xfe", "\xff", "a\x80", "\xf4\x90\x80\x80" /* above U+10FFFF */} {
		if permatrix.ValidID(id) {
			t.Errorf("ValidID(%q) = true: JSON would write it as %q", id, strings.ToValidUTF8(id, "\ufffd"))
		}
	}
}

func TestCheckID(t *testing.T) {
	if err := permatrix.CheckID("subject", "alice"); err != nil {
		t.Fatalf("CheckID(alice) = %v", err)
	}
	err := permatrix.CheckID("subject", "")
	if permatrix.ErrorCode(err) != permatrix.EINVALID || permatrix.ErrorMessage(err) != "subject is required" {
		t.Fatalf("CheckID(\"\") = %v, want EINVALID \"subject is required\"", err)
	}
	for name, id := range hostileIDs {
		if id == "" {
			continue
		}
		err := permatrix.CheckID("resource.id", id)
		if permatrix.ErrorCode(err) != permatrix.EINVALID {
			t.Errorf("%s: CheckID = %v, want EINVALID", name, err)
			continue
		}
		msg := permatrix.ErrorMessage(err)
		if !strings.HasPrefix(msg, "resource.id must be 1 to 256 bytes") {
			t.Errorf("%s: message %q does not name the field and the rule", name, msg)
		}
		// The message never echoes the hostile id (it may be a log line).
		if strings.Contains(msg, id) {
			t.Errorf("%s: message %q echoes the id", name, msg)
		}
	}
}

func TestValidSubject(t *testing.T) {
	for s, want := range map[string]bool{
		"user:alice":                       true,
		"group:admins":                     true,
		"user:user:alice":                  true, // the id is "user:alice"
		"user: ":                           true,
		"user:":                            false,
		"group:":                           false,
		"alice":                            false,
		"":                                 false,
		"User:alice":                       false, // prefixes are case-sensitive
		"USER:alice":                       false,
		"GROUP:admins":                     false,
		"users:alice":                      false,
		" user:alice":                      false,
		"user :alice":                      false,
		"role:admin":                       false,
		"user:al\nice":                     false,
		"group:\x00":                       false,
		"user:\xff":                        false,
		"user:" + strings.Repeat("a", 256): true,
		"user:" + strings.Repeat("a", 257): false,
	} {
		if got := permatrix.ValidSubject(s); got != want {
			t.Errorf("ValidSubject(%q) = %v, want %v", s, got, want)
		}
	}
}

func validAssignment() permatrix.Assignment {
	return permatrix.Assignment{Subject: "user:alice", System: "celonis-task-mining", Role: "admin", Scope: permatrix.ServiceScope}
}

func TestAssignmentValidate(t *testing.T) {
	if err := validAssignment().Validate(); err != nil {
		t.Fatalf("a valid assignment: %v", err)
	}
	withID := validAssignment()
	withID.ID = "a000000000001"
	if err := withID.Validate(); err != nil {
		t.Fatalf("a valid assignment with an id: %v", err)
	}
	project := validAssignment()
	project.Role, project.Permission = "", "edit_users"
	project.Scope = permatrix.Scope{Type: "project", ID: "p1"}
	if err := project.Validate(); err != nil {
		t.Fatalf("a valid project permission: %v", err)
	}

	cases := []struct {
		name string
		edit func(*permatrix.Assignment)
		msg  string // a part of the message
	}{
		{"bad id", func(a *permatrix.Assignment) { a.ID = "a\n1" }, "invalid assignment id"},
		{"long id", func(a *permatrix.Assignment) { a.ID = strings.Repeat("1", 257) }, "invalid assignment id"},
		{"no subject", func(a *permatrix.Assignment) { a.Subject = "" }, "subject is required"},
		{"bare subject", func(a *permatrix.Assignment) { a.Subject = "alice" }, `subject must be "user:<id>" or "group:<id>"`},
		{"subject case variant", func(a *permatrix.Assignment) { a.Subject = "User:alice" }, `subject must be`},
		{"subject control", func(a *permatrix.Assignment) { a.Subject = "user:\x1b" }, `subject must be`},
		{"subject bad UTF-8", func(a *permatrix.Assignment) { a.Subject = "group:\xff" }, `subject must be`},
		{"no system", func(a *permatrix.Assignment) { a.System = "" }, "system is required"},
		{"bad system", func(a *permatrix.Assignment) { a.System = "celonis\x00" }, "invalid system id"},
		{"neither role nor permission", func(a *permatrix.Assignment) { a.Role = "" }, "one of role and permission is required"},
		{"both", func(a *permatrix.Assignment) { a.Permission = "edit_users" }, "exactly one of role and permission"},
		{"bad role", func(a *permatrix.Assignment) { a.Role = strings.Repeat("r", 300) }, "invalid role id"},
		{"bad permission", func(a *permatrix.Assignment) { a.Role, a.Permission = "", "p\x85" }, "invalid permission id"},
		{"no scope", func(a *permatrix.Assignment) { a.Scope = permatrix.Scope{} }, "scope.type is required"},
		{"scope type with colon", func(a *permatrix.Assignment) { a.Scope = permatrix.Scope{Type: "project:p1", ID: "x"} }, `invalid scope.type "project:p1"`},
		{"scope type control", func(a *permatrix.Assignment) { a.Scope = permatrix.Scope{Type: "pro\tject", ID: "x"} }, "invalid scope.type"},
		{"service with id", func(a *permatrix.Assignment) { a.Scope = permatrix.Scope{Type: "service", ID: "x"} }, `scope.id is not allowed with scope.type "service"`},
		{"project without id", func(a *permatrix.Assignment) { a.Scope = permatrix.Scope{Type: "project"} }, `scope.id is required for scope.type "project"`},
		{"project bad id", func(a *permatrix.Assignment) { a.Scope = permatrix.Scope{Type: "project", ID: "\xfe"} }, "scope.id is required"},
		// "Service" is not the service scope: it is a scope type of its own
		// (that no catalog knows), so it needs an id.
		{"Service case variant", func(a *permatrix.Assignment) { a.Scope = permatrix.Scope{Type: "Service"} }, `scope.id is required for scope.type "Service"`},
	}
	for _, c := range cases {
		a := validAssignment()
		c.edit(&a)
		err := a.Validate()
		if permatrix.ErrorCode(err) != permatrix.EINVALID {
			t.Errorf("%s: Validate() = %v, want EINVALID", c.name, err)
			continue
		}
		if !strings.Contains(permatrix.ErrorMessage(err), c.msg) {
			t.Errorf("%s: message %q lacks %q", c.name, permatrix.ErrorMessage(err), c.msg)
		}
	}
}

func TestMembershipValidate(t *testing.T) {
	if err := (permatrix.Membership{Group: "admins", User: "alice"}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, m := range []permatrix.Membership{
		{Group: "", User: "alice"},
		{Group: "admins", User: ""},
		{Group: "adm\nins", User: "alice"},
		{Group: "admins", User: "\xff"},
		{Group: strings.Repeat("g", 257), User: "alice"},
	} {
		if err := m.Validate(); permatrix.ErrorCode(err) != permatrix.EINVALID {
			t.Errorf("%+q: Validate() = %v, want EINVALID", m, err)
		}
	}
}

func TestRoleValidate(t *testing.T) {
	ok := permatrix.Role{System: "blueprism", Name: "Ops", Permissions: []string{"view_resource"}}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (permatrix.Role{System: "blueprism", Name: "Empty", Permissions: []string{}}).Validate(); err != nil {
		t.Fatalf("a role with no permissions is a shape the store keeps: %v", err)
	}
	for name, c := range map[string]struct {
		r   permatrix.Role
		msg string
	}{
		"no system":       {permatrix.Role{Name: "Ops", Permissions: []string{}}, "invalid system id"},
		"no name":         {permatrix.Role{System: "blueprism", Permissions: []string{}}, "role names are 1 to 256 bytes"},
		"name control":    {permatrix.Role{System: "blueprism", Name: "O\nps", Permissions: []string{}}, "role names"},
		"nil permissions": {permatrix.Role{System: "blueprism", Name: "Ops"}, "permissions is required"},
		"bad permission":  {permatrix.Role{System: "blueprism", Name: "Ops", Permissions: []string{"ok", ""}}, `invalid permission id ""`},
	} {
		err := c.r.Validate()
		if permatrix.ErrorCode(err) != permatrix.EINVALID || !strings.Contains(permatrix.ErrorMessage(err), c.msg) {
			t.Errorf("%s: Validate() = %v, want EINVALID with %q", name, err, c.msg)
		}
	}
}

func TestRoleNormal(t *testing.T) {
	in := []string{"b", "a", "b", "c", "a"}
	r := permatrix.Role{System: "s", Name: "n", Permissions: in}
	n := r.Normal()
	if got := strings.Join(n.Permissions, ","); got != "a,b,c" {
		t.Fatalf("Normal().Permissions = %q, want a,b,c", got)
	}
	if strings.Join(in, ",") != "b,a,b,c,a" {
		t.Fatalf("Normal changed the caller's slice: %q", in)
	}
	if p := (permatrix.Role{}).Normal().Permissions; p == nil || len(p) != 0 {
		t.Fatalf("Normal of no permissions = %#v, want an empty, non-nil slice", p)
	}
}

func TestProjectValidate(t *testing.T) {
	for _, p := range []permatrix.Project{
		{System: "celonis-task-mining", ID: "p1"},
		{System: "celonis-task-mining", ID: "p1", CreatedBy: "alice", Kind: "assisted"},
		{System: "celonis-task-mining", ID: "p1", Kind: "unassisted"},
	} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	for name, c := range map[string]struct {
		p   permatrix.Project
		msg string
	}{
		"no system":        {permatrix.Project{ID: "p1"}, "invalid system id"},
		"no id":            {permatrix.Project{System: "s"}, "project ids are 1 to 256 bytes"},
		"id bad UTF-8":     {permatrix.Project{System: "s", ID: "p\xff"}, "project ids"},
		"creator control":  {permatrix.Project{System: "s", ID: "p", CreatedBy: "al\x00ice"}, "created_by must be a user id"},
		"kind case":        {permatrix.Project{System: "s", ID: "p", Kind: "Assisted"}, `kind must be "assisted" or "unassisted"`},
		"kind space":       {permatrix.Project{System: "s", ID: "p", Kind: "assisted "}, "kind must be"},
		"kind other":       {permatrix.Project{System: "s", ID: "p", Kind: "manual"}, "kind must be"},
		"creator too long": {permatrix.Project{System: "s", ID: "p", CreatedBy: strings.Repeat("u", 257)}, "created_by"},
	} {
		err := c.p.Validate()
		if permatrix.ErrorCode(err) != permatrix.EINVALID || !strings.Contains(permatrix.ErrorMessage(err), c.msg) {
			t.Errorf("%s: Validate() = %v, want EINVALID with %q", name, err, c.msg)
		}
	}
}

// FuzzValidID holds ValidID to its definition, and every Validate to "no
// panic; a refusal is EINVALID".
func FuzzValidID(f *testing.F) {
	for _, id := range hostileIDs {
		f.Add(id)
	}
	for _, id := range usableIDs {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		want := id != "" && len(id) <= permatrix.MaxIDBytes && utf8.ValidString(id) &&
			!strings.ContainsFunc(id, func(r rune) bool { return r < 0x20 || r == 0x7f })
		if got := permatrix.ValidID(id); got != want {
			t.Fatalf("ValidID(%q) = %v, want %v", id, got, want)
		}
		if (permatrix.CheckID("f", id) == nil) != want {
			t.Fatalf("CheckID(%q) disagrees with ValidID", id)
		}
		for _, err := range []error{
			permatrix.Assignment{Subject: "user:" + id, System: id, Role: id, Scope: permatrix.Scope{Type: id, ID: id}}.Validate(),
			permatrix.Membership{Group: id, User: id}.Validate(),
			permatrix.Role{System: id, Name: id, Permissions: []string{id}}.Validate(),
			permatrix.Project{System: id, ID: id, CreatedBy: id, Kind: id}.Validate(),
		} {
			if err != nil && permatrix.ErrorCode(err) != permatrix.EINVALID {
				t.Fatalf("Validate(%q) = %v, want nil or EINVALID", id, err)
			}
		}
	})
}
