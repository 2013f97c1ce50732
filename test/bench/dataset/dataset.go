// Package dataset is the benchmark's store, generated from a seed: users,
// groups with members, Blue Prism custom roles, UiPath projects and
// assignments over all seven systems, every one valid under the write rules
// when the operator writes it (no actor) — and the checks the load tests
// send. The same Config and seed give the same bytes, so a run can be
// repeated; every user's assignments and check are computed from the seed
// and the user's number alone.
//
// Ids (shared/vendor-docs/README.md, shared/contract.md §2): users u<N>,
// groups g<N>, Blue Prism custom roles bp-role-<N>; project, bucket, space
// and Blue Prism group ids are short per-system names (cp<N>, up<N>, sp<N>,
// b<N>, s<N>, pg<N>, og<N>, rg<N>).
package dataset

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// The systems, by id (shared/contract.md §2).
const (
	celonisTM      = "celonis-task-mining"
	celonisStudio  = "celonis-studio"
	celonisStorage = "celonis-storage-manager"
	uipathSuite    = "uipath-task-mining-suite"
	uipathOrch     = "uipath-orchestrator"
	uipathCloud    = "uipath-task-mining-cloud"
	blueprism      = "blueprism"
)

// Config is the size of the dataset. Zero fields take the defaults named
// on each field, derived from Users.
type Config struct {
	Seed  uint64
	Users int
	// Assignments is the number of assignments the store holds once the
	// dataset is loaded: the users' and groups' (imported) and the project
	// creators' (made by registering the projects). Default 2 × Users.
	Assignments int
	// Groups (default Users/50, at least 10), each holding two assignments
	// and MembersPerGroup members (default 10).
	Groups, MembersPerGroup int
	// CustomRoles are Blue Prism custom roles (default 100).
	CustomRoles int
	// Projects are uipath-task-mining-cloud projects registered with a
	// creator, who gets project_admin on it (default Users/100, at least 10).
	Projects int
}

// Assignment is one line of the import (an assignment object of the API).
type Assignment struct {
	Subject    string `json:"subject"`
	System     string `json:"system"`
	Role       string `json:"role,omitempty"`
	Permission string `json:"permission,omitempty"`
	Scope      Scope  `json:"scope"`
}

// Scope is an assignment's scope, or a check's resource.
type Scope struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// Role is a Blue Prism custom role (PUT /v1/systems/blueprism/roles/{name}).
type Role struct {
	System      string   `json:"-"`
	Name        string   `json:"-"`
	Permissions []string `json:"permissions"`
}

// Project is a registered project (PUT /v1/systems/{system}/projects/{id}).
type Project struct {
	System    string `json:"-"`
	ID        string `json:"-"`
	CreatedBy string `json:"created_by"`
	Kind      string `json:"kind"`
}

// Check is a body of POST /v1/check.
type Check struct {
	Subject  string `json:"subject"`
	System   string `json:"system"`
	Action   string `json:"action"`
	Resource *Scope `json:"resource,omitempty"`
}

// Set is a generated dataset.
type Set struct {
	Config
	catalogs map[string]catalog
	roles    []Role
	// userLines is how many assignments the import gives the users in all
	// (the rest are the groups' and the project creators').
	userLines int
	// stride spreads the users who get one more assignment than the others
	// over the whole range.
	stride int
}

// catalog is what the generator reads of systems/<id>/data.json.
type catalog struct {
	Permissions map[string]struct {
		Scopes []string `json:"scopes"`
	} `json:"permissions"`
	Actions map[string]struct {
		Scopes []string `json:"scopes"`
	} `json:"actions"`
	permissions []string // sorted ids
	actions     []string // sorted ids
}

// Sizes of the id pools assignments draw their scopes from.
type pools struct{ celonisProjects, suiteProjects, buckets, spaces, bpGroups int }

func (s *Set) pools() pools {
	n := max(s.Users/100, 20)
	return pools{celonisProjects: n, suiteProjects: n, buckets: max(s.Users/1000, 10), spaces: max(s.Users/1000, 10), bpGroups: max(s.Users/500, 10)}
}

// New generates the dataset of cfg, reading the catalogs under systemsDir
// (the repository's systems/).
func New(cfg Config, systemsDir string) (*Set, error) {
	if cfg.Users < 10 {
		return nil, fmt.Errorf("users: at least 10, got %d", cfg.Users)
	}
	if cfg.Assignments == 0 {
		cfg.Assignments = 2 * cfg.Users
	}
	if cfg.Groups == 0 {
		cfg.Groups = max(cfg.Users/50, 10)
	}
	if cfg.MembersPerGroup == 0 {
		cfg.MembersPerGroup = 10
	}
	if cfg.CustomRoles == 0 {
		cfg.CustomRoles = 100
	}
	if cfg.Projects == 0 {
		cfg.Projects = max(cfg.Users/100, 10)
	}
	s := &Set{Config: cfg, catalogs: map[string]catalog{}}
	s.userLines = cfg.Assignments - groupLines*cfg.Groups - cfg.Projects
	if s.userLines < cfg.Users || s.userLines > maxUserLines*cfg.Users {
		return nil, fmt.Errorf("assignments: %d leaves %d for %d users (groups hold %d, project creators %d): each user holds 1 to %d",
			cfg.Assignments, s.userLines, cfg.Users, groupLines*cfg.Groups, cfg.Projects, maxUserLines)
	}
	if cfg.MembersPerGroup > cfg.Users {
		return nil, fmt.Errorf("members per group (%d) exceed the users (%d)", cfg.MembersPerGroup, cfg.Users)
	}
	for _, id := range []string{celonisTM, celonisStudio, celonisStorage, uipathSuite, uipathOrch, uipathCloud, blueprism} {
		raw, err := os.ReadFile(filepath.Join(systemsDir, id, "data.json"))
		if err != nil {
			return nil, err
		}
		var c catalog
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		for p := range c.Permissions {
			c.permissions = append(c.permissions, p)
		}
		for a := range c.Actions {
			c.actions = append(c.actions, a)
		}
		sort.Strings(c.permissions)
		sort.Strings(c.actions)
		s.catalogs[id] = c
	}
	s.stride = coprime(cfg.Users)
	bp := s.catalogs[blueprism].permissions
	for r := range cfg.CustomRoles {
		rng := s.rng(streamRoles, r)
		perms := make([]string, 3+rng.IntN(10))
		for i := range perms {
			perms[i] = bp[rng.IntN(len(bp))]
		}
		slices.Sort(perms)
		s.roles = append(s.roles, Role{System: blueprism, Name: fmt.Sprintf("bp-role-%d", r), Permissions: slices.Compact(perms)})
	}
	return s, nil
}

// Every user holds 1 to maxUserLines assignments; every group groupLines.
const (
	maxUserLines = 3
	groupLines   = 2
)

// Streams of the seeded generator: each user, group, role and project has
// its own, so that any one is computed without the others.
const (
	streamUsers = iota << 40
	streamGroups
	streamRoles
	streamProjects
	streamChecks
)

func (s *Set) rng(stream, n int) *rand.Rand {
	return rand.New(rand.NewPCG(s.Seed, uint64(stream+n)))
}

// coprime returns a stride coprime to n, so that u → u·stride mod n is a
// permutation.
func coprime(n int) int {
	for st := 7919; ; st += 2 {
		if gcd(st, n) == 1 {
			return st
		}
	}
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// UserID is user number u's id.
func UserID(u int) string { return fmt.Sprintf("u%d", u) }

// Roles are the Blue Prism custom roles, defined before the import.
func (s *Set) Roles() []Role { return s.roles }

// Project is project number p (uipath-task-mining-cloud).
func (s *Set) Project(p int) Project {
	rng := s.rng(streamProjects, p)
	kind := "assisted"
	if rng.IntN(5) == 0 {
		kind = "unassisted"
	}
	return Project{System: uipathCloud, ID: fmt.Sprintf("up%d", p), CreatedBy: UserID(rng.IntN(s.Users)), Kind: kind}
}

// Members are group number g's members (distinct users).
func (s *Set) Members(g int) []string {
	rng := s.rng(streamGroups, g)
	seen := make(map[int]bool, s.MembersPerGroup)
	out := make([]string, 0, s.MembersPerGroup)
	for len(out) < s.MembersPerGroup {
		u := rng.IntN(s.Users)
		if !seen[u] {
			seen[u] = true
			out = append(out, UserID(u))
		}
	}
	return out
}

// Lines is the number of lines of the import (the users' and groups'
// assignments); the project creators' assignments make up the rest of
// Assignments.
func (s *Set) Lines() int { return s.userLines + groupLines*s.Groups }

// userCount is how many assignments user u holds.
func (s *Set) userCount(u int) int {
	base, extra := s.userLines/s.Users, s.userLines%s.Users
	if (u*s.stride)%s.Users < extra {
		return base + 1
	}
	return base
}

// systemWeights is how the users' assignments spread over the systems.
var systemWeights = []struct {
	id     string
	weight int
}{
	{celonisTM, 30}, {blueprism, 20}, {uipathCloud, 15}, {uipathSuite, 15},
	{uipathOrch, 8}, {celonisStorage, 7}, {celonisStudio, 5},
}

// User is user number u's assignments, in import order (a Celonis role
// before the permissions it goes with).
func (s *Set) User(u int) []Assignment {
	rng := s.rng(streamUsers, u)
	subject := "user:" + UserID(u)
	// Three distinct systems, by weight.
	var systems []string
	for len(systems) < 3 {
		total := 0
		for _, w := range systemWeights {
			if !slices.Contains(systems, w.id) {
				total += w.weight
			}
		}
		n := rng.IntN(total)
		for _, w := range systemWeights {
			if slices.Contains(systems, w.id) {
				continue
			}
			if n < w.weight {
				systems = append(systems, w.id)
				break
			}
			n -= w.weight
		}
	}
	// "Members can be granted nothing" (vendor-docs/README.md, Celonis):
	// a user gets the member role only with no Celonis permission at all.
	celonisPermissions := slices.Contains(systems, celonisStudio) || slices.Contains(systems, celonisStorage)
	var out []Assignment
	for _, sys := range systems {
		out = append(out, s.assignments(rng, subject, sys, celonisPermissions)...)
	}
	return out[:s.userCount(u)]
}

// group is group number g's assignments.
func (s *Set) group(g int) []Assignment {
	rng := s.rng(streamGroups, g+1<<30)
	subject := fmt.Sprintf("group:g%d", g)
	kinds := []string{celonisTM, uipathCloud, blueprism, uipathSuite, uipathOrch}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	var out []Assignment
	for _, sys := range kinds[:2] {
		// Groups never hold the Celonis member role: their members may be
		// granted permissions.
		out = append(out, s.assignments(rng, subject, sys, true)...)
	}
	return out[:groupLines]
}

// assignments are one subject's assignments in one system: one, or a
// Celonis role and a permission.
func (s *Set) assignments(rng *rand.Rand, subject, sys string, noMember bool) []Assignment {
	p := s.pools()
	service := Scope{Type: "service"}
	a := Assignment{Subject: subject, System: sys, Scope: service}
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	id := func(prefix string, n int) string { return fmt.Sprintf("%s%d", prefix, rng.IntN(n)) }
	switch sys {
	case celonisTM:
		r := rng.IntN(100)
		switch {
		case r < 5:
			a.Role = "admin"
			return []Assignment{a}
		case r < 20 && !noMember:
			a.Role = "member"
			return []Assignment{a}
		}
		a.Role = "analyst"
		perm := Assignment{Subject: subject, System: sys, Permission: pick(s.catalogs[celonisTM].permissions...), Scope: service}
		if perm.Permission != "create_project" && rng.IntN(5) != 0 {
			perm.Scope = Scope{Type: "project", ID: id("cp", p.celonisProjects)}
		}
		return []Assignment{a, perm}
	case celonisStudio:
		a.Permission, a.Scope = "create_package", Scope{Type: "space", ID: id("s", p.spaces)}
	case celonisStorage:
		if rng.IntN(4) == 0 {
			a.Permission = "use_file_storage_manager"
		} else {
			a.Permission, a.Scope = pick("get", "list", "delete"), Scope{Type: "bucket", ID: id("b", p.buckets)}
		}
	case uipathOrch:
		a.Permission = pick(s.catalogs[uipathOrch].permissions...)
	case uipathSuite:
		switch r := rng.IntN(100); {
		case r < 3:
			a.Role = "admin"
		case r < 20:
			a.Role = "process_sme"
		case r < 50:
			a.Role = "user"
		default:
			a.Role, a.Scope = "user", Scope{Type: "project", ID: id("sp", p.suiteProjects)}
		}
	case uipathCloud:
		// project_admin is the creators' (Project): never imported, so no
		// import line repeats a creator's assignment.
		switch r := rng.IntN(100); {
		case r < 1:
			a.Role = "administrator"
		case r < 10:
			a.Role = "project_creator"
		default:
			a.Role, a.Scope = pick("business_analyst", "recording_user"), Scope{Type: "project", ID: id("up", s.Projects)}
		}
	case blueprism:
		if rng.IntN(3) == 0 {
			a.Permission = pick(s.catalogs[blueprism].permissions...)
			return []Assignment{a}
		}
		a.Role = s.roles[rng.IntN(len(s.roles))].Name
		switch r := rng.IntN(4); r {
		case 1:
			a.Scope = Scope{Type: "process_group", ID: id("pg", p.bpGroups)}
		case 2:
			a.Scope = Scope{Type: "object_group", ID: id("og", p.bpGroups)}
		case 3:
			a.Scope = Scope{Type: "resource_group", ID: id("rg", p.bpGroups)}
		}
	}
	return []Assignment{a}
}

// WriteImport writes the import, NDJSON: the groups' assignments, then the
// users'. It returns the lines written.
func (s *Set) WriteImport(w io.Writer) (int, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	n := 0
	for g := range s.Groups {
		for _, a := range s.group(g) {
			if err := enc.Encode(a); err != nil {
				return n, err
			}
			n++
		}
	}
	for u := range s.Users {
		for _, a := range s.User(u) {
			if err := enc.Encode(a); err != nil {
				return n, err
			}
			n++
		}
	}
	return n, bw.Flush()
}

// Check is a check about user u: about one of its assignments, at its
// scope (most are allowed), or now and then another action there (often
// denied). Every check is valid: its action exists in the system at the
// resource's type, and it needs no context.
func (s *Set) Check(u int) Check {
	rng := s.rng(streamChecks, u)
	as := s.User(u)
	a := as[rng.IntN(len(as))]
	c := Check{Subject: UserID(u), System: a.System}
	if a.Scope.Type != "service" {
		c.Resource = &Scope{Type: a.Scope.Type, ID: a.Scope.ID}
	}
	cat := s.catalogs[a.System]
	var candidates []string
	switch {
	case a.Permission != "" && s.actionAt(a.System, a.Permission, a.Scope.Type):
		candidates = []string{a.Permission}
	case a.System == blueprism && a.Role != "":
		for _, r := range s.roles {
			if r.Name == a.Role {
				for _, p := range r.Permissions {
					if s.actionAt(blueprism, p, a.Scope.Type) {
						candidates = append(candidates, p)
					}
				}
			}
		}
	}
	if len(candidates) == 0 || rng.IntN(4) == 0 {
		candidates = candidates[:0]
		for _, act := range cat.actions {
			if s.actionAt(a.System, act, a.Scope.Type) && !needsContext[a.System+"/"+act] {
				candidates = append(candidates, act)
			}
		}
	}
	if len(candidates) == 0 { // no action at this scope type: ask at service scope
		c.Resource = nil
		for _, act := range cat.actions {
			if s.actionAt(a.System, act, "service") && !needsContext[a.System+"/"+act] {
				candidates = append(candidates, act)
			}
		}
	}
	c.Action = candidates[rng.IntN(len(candidates))]
	return c
}

// needsContext are the actions a check without context cannot ask
// meaningfully (vendor-docs/README.md: add_members, assign_roles).
var needsContext = map[string]bool{uipathSuite + "/add_members": true, uipathCloud + "/assign_roles": true}

// actionAt: the system has the action at the scope type.
func (s *Set) actionAt(sys, action, scopeType string) bool {
	act, ok := s.catalogs[sys].Actions[action]
	return ok && slices.Contains(act.Scopes, scopeType)
}

// HotUsers are n users spread over the range (the hot set's).
func (s *Set) HotUsers(n int) []int {
	n = min(n, s.Users)
	out := make([]int, n)
	for i := range out {
		out[i] = (i * s.stride) % s.Users
	}
	return out
}

// WriteChecks writes the checks of users, one JSON object a line.
func (s *Set) WriteChecks(w io.Writer, users []int) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	for _, u := range users {
		if err := enc.Encode(s.Check(u)); err != nil {
			return err
		}
	}
	return bw.Flush()
}
