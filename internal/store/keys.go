package store

import (
	"bytes"
	"strings"

	"github.com/permatrix/permatrix"
)

// sep joins the segments of a key.
const sep = 0x00

// Namespaces and indexes (the first two segments of every key).
const (
	nsDoc   = "d" // data.store: what the policies read
	nsIndex = "i" // indexes of the admin API

	ixGrants      = "grants"
	ixMemberships = "memberships"
	ixRoles       = "roles"
	ixProjects    = "projects"
	ixAssignments = "assignments"
	ixMembers     = "members"
	ixRoleUses    = "role_uses"
	ixScopes      = "scopes"
)

// Kinds of grant (the kind segment of a grant key).
const (
	KindRole       = "role"
	KindPermission = "permission"
)

// unitDepth is, per index, how many segments (namespace and index name
// included) make a key's unit.
var unitDepth = map[string]int{
	nsDoc + "\x00" + ixGrants:        4, // d grants <principal> <system>
	nsDoc + "\x00" + ixMemberships:   3, // d memberships <user>
	nsDoc + "\x00" + ixRoles:         4, // d roles <system> <role>
	nsDoc + "\x00" + ixProjects:      4, // d projects <system> <project>
	nsIndex + "\x00" + ixAssignments: 3, // i assignments <id>
	nsIndex + "\x00" + ixMembers:     3, // i members <group>
	nsIndex + "\x00" + ixRoleUses:    4, // i role_uses <system> <role>
	nsDoc + "\x00" + ixScopes:        4, // d scopes <system> <scope>
}

// leafDepth is, per data.store index, how many segments after "d" name a
// leaf: the documents below it are JSON values, not keys.
var leafDepth = map[string]int{
	ixGrants:      6, // grants principal system kind name scope
	ixMemberships: 3, // memberships user group
	ixRoles:       3, // roles system role
	ixProjects:    3, // projects system project
	ixScopes:      4, // scopes system scope id
}

// Key builds a key from segments.
func Key(segments ...string) []byte {
	if len(segments) == 0 {
		return []byte{}
	}
	return join(segments[0], segments[1:])
}

// join is the key of head followed by segs, allocated once.
func join(head string, segs []string) []byte {
	n := len(head)
	for _, s := range segs {
		n += 1 + len(s)
	}
	return appendJoin(make([]byte, 0, n), head, segs)
}

// appendJoin appends the key of head followed by segs to dst.
func appendJoin(dst []byte, head string, segs []string) []byte {
	dst = append(dst, head...)
	for _, s := range segs {
		dst = append(append(dst, sep), s...)
	}
	return dst
}

// Prefix is Key(segments...) followed by the separator: every key strictly
// below that subtree starts with it.
func Prefix(segments ...string) []byte { return append(Key(segments...), sep) }

// DocumentPrefix is the prefix of every key of data.store, the document
// the policies read: the only keys a decision reads (bolt.Options.Resident).
func DocumentPrefix() []byte { return Prefix(nsDoc) }

// Segments splits a key into its segments.
func Segments(key []byte) []string {
	return strings.Split(string(key), "\x00")
}

// ScopeKey is the scope segment of a grant key: "service", or "<type>:<id>".
// Scope types never contain ':' (they are catalog identifiers), so the first
// ':' splits it back (ParseScopeKey).
func ScopeKey(s permatrix.Scope) string {
	if s.IsService() || s.ID == "" {
		return s.Type
	}
	return s.Type + ":" + s.ID
}

// appendScopeKey appends ScopeKey(s) to dst: a key holding it is made
// without the scope's string (an allocation of its own).
func appendScopeKey(dst []byte, s permatrix.Scope) []byte {
	dst = append(dst, s.Type...)
	if s.IsService() || s.ID == "" {
		return dst
	}
	return append(append(dst, ':'), s.ID...)
}

// scopeKeyLen is len(ScopeKey(s)).
func scopeKeyLen(s permatrix.Scope) int {
	if s.IsService() || s.ID == "" {
		return len(s.Type)
	}
	return len(s.Type) + 1 + len(s.ID)
}

// ParseScopeKey is the inverse of ScopeKey.
func ParseScopeKey(k string) permatrix.Scope {
	t, id, ok := strings.Cut(k, ":")
	if !ok {
		return permatrix.Scope{Type: k}
	}
	return permatrix.Scope{Type: t, ID: id}
}

// GrantKey is where an assignment lives in data.store.
func GrantKey(a permatrix.Assignment) []byte {
	kind, name := KindPermission, a.Permission
	if a.Role != "" {
		kind, name = KindRole, a.Role
	}
	// Its scope segment is appended in place: ScopeKey's string was an
	// allocation of its own a grant key.
	segs := [...]string{ixGrants, a.Subject, a.System, kind, name}
	n := len(nsDoc) + 1 + scopeKeyLen(a.Scope)
	for _, s := range segs {
		n += 1 + len(s)
	}
	k := appendJoin(make([]byte, 0, n), nsDoc, segs[:])
	return appendScopeKey(append(k, sep), a.Scope)
}

// GrantsPrefix selects the grants of a principal, optionally in one system.
func GrantsPrefix(principal string, system ...string) []byte {
	return Prefix(append([]string{nsDoc, ixGrants, principal}, system...)...)
}

func assignmentKey(id string) []byte { return Key(nsIndex, ixAssignments, id) }

func membershipKey(m permatrix.Membership) []byte {
	return Key(nsDoc, ixMemberships, m.User, m.Group)
}

func memberKey(m permatrix.Membership) []byte { return Key(nsIndex, ixMembers, m.Group, m.User) }

func roleKey(system, name string) []byte { return Key(nsDoc, ixRoles, system, name) }

func roleUseKey(system, role, id string) []byte { return Key(nsIndex, ixRoleUses, system, role, id) }

func scopeUseKey(system string, scope permatrix.Scope, id string) []byte {
	return Key(nsDoc, ixScopes, system, ScopeKey(scope), id)
}

func projectKey(system, id string) []byte { return Key(nsDoc, ixProjects, system, id) }

// DocKey is the key (or key prefix, for a subtree) of a data.store path
// (the path below "store"). leaf reports whether the path names a leaf or
// a document inside one, in which case rest is the path inside the leaf's
// JSON value. ok is false for a path that cannot exist in the layout.
func DocKey(path []string) (key []byte, leaf bool, rest []string, ok bool) {
	if len(path) == 0 {
		return Key(nsDoc), false, nil, true
	}
	depth, known := leafDepth[path[0]]
	if !known {
		return nil, false, nil, false
	}
	for _, s := range path {
		if strings.IndexByte(s, sep) >= 0 {
			return nil, false, nil, false
		}
	}
	if len(path) < depth {
		return Key(append([]string{nsDoc}, path...)...), false, nil, true
	}
	return Key(append([]string{nsDoc}, path[:depth]...)...), true, path[depth:], true
}

// DocNode is a place in data.store's layout reached one segment at a time,
// as a policy's lookup goes (data.store.grants[p][sys]...): it knows how deep
// it is and where the leaves of its index are, so each step is checked
// without a DocKey of the whole path. The caller keeps the segments
// (DocNodeKey builds the key).
type DocNode struct {
	depth int // segments below "d"
	leaf  int // the index's leaf depth (leafDepth); 0 at the root
	unit  int // the depth of the index's units (unitDepth, below "d")
}

// Child is the place below n at seg; ok is false where the layout has none
// (an unknown index, a segment holding the separator, below a leaf).
func (n DocNode) Child(seg string) (c DocNode, ok bool) {
	if strings.IndexByte(seg, sep) >= 0 || (n.leaf > 0 && n.depth >= n.leaf) {
		return DocNode{}, false
	}
	c = DocNode{depth: n.depth + 1, leaf: n.leaf, unit: n.unit}
	if n.depth == 0 {
		if c.leaf, ok = leafDepth[seg]; !ok {
			return DocNode{}, false
		}
		c.unit = unitDepth[nsDoc+"\x00"+seg] - 1
	}
	return c, true
}

// Unit reports whether n is a unit (UnitOf): what one write changes and
// one read guard covers — a principal's grants in one system, a user's
// memberships. Every read at or below it is guarded by it alone.
func (n DocNode) Unit() bool { return n.unit > 0 && n.depth == n.unit }

// Root reports whether n is data.store itself.
func (n DocNode) Root() bool { return n.depth == 0 }

// Leaf reports whether n is a leaf: one key, holding a JSON value.
func (n DocNode) Leaf() bool { return n.leaf > 0 && n.depth == n.leaf }

// Depth is how many segments below data.store n is.
func (n DocNode) Depth() int { return n.depth }

// DocNodeKey is the key of the place reached by segs (a leaf's key, or,
// followed by the separator, the prefix of every key below it).
func DocNodeKey(segs ...string) []byte { return join(nsDoc, segs) }

// AppendDocNodeKey appends DocNodeKey(segs...) to dst: a caller that
// looks up many keys builds them in one buffer.
func AppendDocNodeKey(dst []byte, segs ...string) []byte { return appendJoin(dst, nsDoc, segs) }

// DocIndexes are the data.store indexes, in key order.
var DocIndexes = []string{ixGrants, ixMemberships, ixProjects, ixRoles, ixScopes}

// DocPath is the data.store path of a d key (nil for another key).
func DocPath(key []byte) []string {
	segs := Segments(key)
	if len(segs) < 2 || segs[0] != nsDoc {
		return nil
	}
	return segs[1:]
}

// UnitOf is the unit a key or key prefix belongs to: the key cut to its
// index's unit depth, or the prefix itself when it is shallower (a read of a
// whole subtree is guarded by the subtree's own unit, which every write
// below it bumps; see WriteUnits).
func UnitOf(key []byte) []byte {
	key = bytes.TrimSuffix(key, []byte{sep})
	// The index is named by the first two segments, which unitDepth's
	// keys spell with the same separator: no segment is copied.
	first := bytes.IndexByte(key, sep)
	if first < 0 {
		return key
	}
	end := len(key)
	if second := bytes.IndexByte(key[first+1:], sep); second >= 0 {
		end = first + 1 + second
	}
	depth, ok := unitDepth[string(key[:end])]
	if !ok {
		return key
	}
	n := 0
	for i := range key {
		if key[i] == sep {
			n++
			if n == depth {
				return key[:i]
			}
		}
	}
	return key
}

// WriteUnits are the units a write of key bumps: its unit and every
// shallower whole-segment prefix of it, down to the empty root. So any read
// whose unit is one of them sees the write as a change.
func WriteUnits(key []byte) [][]byte { return AppendWriteUnits(nil, key) }

// AppendWriteUnits appends WriteUnits(key) to dst: the units are slices of
// key, so a caller that keeps a buffer for them (a write's planning, its
// commit) finds each key's without allocating.
func AppendWriteUnits(dst [][]byte, key []byte) [][]byte {
	u := UnitOf(key)
	dst = append(dst, u)
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] == sep {
			dst = append(dst, u[:i])
		}
	}
	return append(dst, []byte{})
}

// Namespaces are the first segments of the store's keys, sorted: every key
// is one of them, the separator, then the rest. A backend that shares its
// key space with others (etcd) tells its own keys from others' by them.
func Namespaces() []string { return []string{nsDoc, nsIndex} }
