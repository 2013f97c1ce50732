// Package store is permatrix's assignment store, written once over any
// ordered, revisioned key-value backend (internal/bolt for one pod,
// internal/etcd for a fleet). It owns three things the backends never see:
//
//   - the key layout: where each assignment, membership, custom role and
//     project lives, as data.store leaves the policies read and as indexes
//     the admin API reads;
//   - the planning of writes: a domain change (assign, add a member, …)
//     becomes key operations, judged against a snapshot (Tx);
//   - the guards of optimistic concurrency: every read a write's judgement
//     made is recorded as a unit (Tracked), and the backend commits the
//     write only if no unit it read changed since the snapshot's revision.
//
// # Key layout
//
// A key is a list of segments joined by a 0x00 byte. Every segment is a
// permatrix id (permatrix.ValidID: no control characters), so 0x00 never
// occurs inside one and a prefix of whole segments selects a subtree.
//
//	d grants      <principal> <system> <kind> <name> <scope>  → reason (JSON)
//	d memberships <user> <group>                              → true
//	d roles       <system> <role>                             → {"permissions": [...]}
//	d projects    <system> <project>                          → {"created_by": ..., "kind": ...}
//	d scopes      <system> <scope> <id>                       → true (scopes other than service)
//	i assignments <id>                                        → the grant's d key
//	i members     <group> <user>                              → empty
//	i role_uses   <system> <role> <id>                        → empty
//
// The "d" keys, read as nested objects, are data.store as the policies see
// it (see document.go at the repository root for the document): a key is a
// path, its value the leaf. principal is "user:<id>" or "group:<id>", kind is
// "role" or "permission", scope is "service" or "<type>:<id>" (ScopeKey). A
// grant's leaf is the reason a decision gives for it, so a policy finds the
// reasons of a check by direct lookups. The "i" keys are indexes the admin API
// reads; the policies never do.
//
// # Invariants
//
//   - A grant's d key and its i assignments key are written and removed
//     together, with its i role_uses key (a role grant) and its d scopes key
//     (a grant below the service scope); so are a membership's d and i
//     members keys. A snapshot never shows one without the other.
//   - A number the id sequence handed out is never handed out again: ids
//     come from a sequence that only grows (Backend.NextID; a store copy
//     raises the target's past the source's, and past the bbolt file it
//     replaces: a backup restored over a store does not hand out again
//     what the store handed out since — unless that file was damaged past
//     reading), and an explicitly given id
//     (an import line's "id") that is taken is a conflict. The store keeps
//     no record of deleted assignments, so a deleted assignment's id comes
//     back in two cases only: an import line gives it explicitly (it is
//     stored as given, naming the new assignment), or it was given
//     explicitly in the sequence's own form (IDFormat) ahead of the
//     sequence and deleted before the sequence reached it (the sequence
//     hands it out then). storetest's WhenAnIDComesBack holds every
//     backend to this. Outside the store's reach: an etcd cluster restored
//     from an older etcd snapshot has its counter as it was then, and
//     hands out again what it handed out since; a counter deleted in etcd
//     is put back above what the reserving sidecar knows (internal/etcd's
//     idFloor, docs/fleet.md).
//   - Units: every key belongs to one unit, its first UnitDepth segments
//     (grants of one principal in one system; the groups of one user; one
//     role; one project; one assignment id; the members of one group; the
//     uses of one role; the assignments at one scope). A commit bumps the unit of every key it writes and
//     every shallower prefix of that unit, so a read of any subtree is
//     guarded by the unit (or prefix) it maps to (UnitOf).
//   - The revision is not part of any unit: no write may depend on it.
package store
