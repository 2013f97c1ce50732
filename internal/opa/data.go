package opa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/permatrix/permatrix"
	"github.com/permatrix/permatrix/internal/store"
)

// dataStore is the policies' data document as an OPA storage.Store: the
// bundle's data (fixed for the life of a Policy, kept as AST values) and,
// under data.store, the assignment store read through a store.Snapshot —
// no copy of the assignments is kept in memory, so a million assignments
// cost what the backend costs, and a committed write is visible to the next
// transaction with nothing to apply.
//
// A transaction is a snapshot: the one handed to Begin (a decision's view,
// or a write's tracked view, whose reads become the write's guards), or a
// new View of the backend when OPA opens one itself. The data is read-only:
// writes go through internal/store, never through OPA.
type dataStore struct {
	storage.PolicyNotSupported
	bundle  ast.Object
	terms   terms        // the leaves' keys and the bundle's strings, shared by the leaves the vm reads (newTerms)
	boxed   boxedStrings // terms' strings boxed, shared by the decisions' items (jsonOf)
	backend store.Backend
	ids     atomic.Uint64
	nodes   sync.Pool // *storeNodes, reset, for the vm's evaluations (storeNodes.reset)
}

// txn is a read transaction over one snapshot.
type txn struct {
	id   uint64
	snap store.Snapshot
	own  bool // opened by NewTransaction: closed with the transaction
}

func (t *txn) ID() uint64 { return t.id }

func newDataStore(bundleData map[string]any, backend store.Backend) (*dataStore, error) {
	v, err := ast.InterfaceToValue(bundleData)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, errors.New("bundle data is not an object")
	}
	ts := newTerms(obj)
	return &dataStore{bundle: obj, terms: ts, boxed: ts.boxed(), backend: backend}, nil
}

// Begin starts a transaction over snap, which the caller closes after the
// transaction ends.
func (d *dataStore) Begin(snap store.Snapshot) storage.Transaction {
	return &txn{id: d.ids.Add(1), snap: snap}
}

func (d *dataStore) NewTransaction(_ context.Context, params ...storage.TransactionParams) (storage.Transaction, error) {
	for _, p := range params {
		if p.Write {
			return nil, writeRefused()
		}
	}
	if d.backend == nil {
		return &txn{id: d.ids.Add(1), snap: store.Empty(0), own: true}, nil
	}
	snap, err := d.backend.View()
	if err != nil {
		return nil, err
	}
	return &txn{id: d.ids.Add(1), snap: snap, own: true}, nil
}

func (d *dataStore) Commit(ctx context.Context, t storage.Transaction) error {
	d.Abort(ctx, t)
	return nil
}

func (d *dataStore) Abort(_ context.Context, t storage.Transaction) {
	if tx, ok := t.(*txn); ok && tx.own {
		_ = tx.snap.Close()
	}
}

func (d *dataStore) Write(context.Context, storage.Transaction, storage.PatchOp, storage.Path, any) error {
	return writeRefused()
}

func (d *dataStore) Truncate(context.Context, storage.Transaction, storage.TransactionParams, storage.Iterator) error {
	return writeRefused()
}

func (d *dataStore) Register(context.Context, storage.Transaction, storage.TriggerConfig) (storage.TriggerHandle, error) {
	return trigger{}, nil // the data never changes through OPA: nothing to trigger
}

type trigger struct{}

func (trigger) Unregister(context.Context, storage.Transaction) {}

func (d *dataStore) ListPolicies(context.Context, storage.Transaction) ([]string, error) {
	return nil, nil // policies are compiled into the Policy, not stored
}

func writeRefused() error {
	return &storage.Error{Code: storage.WritesNotSupportedErr, Message: "permatrix data is read-only through OPA: the assignment store is written by the admin API"}
}

func notFound(storage.Path) error { return errNotFound }

// errNotFound is every read's "no such document": topdown asks for the
// code only, and a decision looks up several absent paths (a principal
// without a grant), so the error names no path and is not allocated.
var errNotFound = &storage.Error{Code: storage.NotFoundErr, Message: "document does not exist"}

// Read returns the document at path as an AST value.
func (d *dataStore) Read(_ context.Context, t storage.Transaction, path storage.Path) (any, error) {
	tx, ok := t.(*txn)
	if !ok {
		return nil, errors.New("opa: transaction of another store")
	}
	if len(path) == 0 {
		doc, err := storeDocument(tx.snap)
		if err != nil {
			return nil, err
		}
		all := d.bundle.Copy()
		all.Insert(ast.StringTerm(permatrix.StoreRoot), ast.NewTerm(doc))
		return all, nil
	}
	if path[0] == permatrix.StoreRoot {
		v, err := readStore(tx.snap, path[1:])
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, notFound(path)
		}
		return v, nil
	}
	if v := walk(d.bundle, path); v != nil {
		return v, nil
	}
	return nil, notFound(path)
}

// copyingStore is d as partial evaluation (the Compile API) reads it:
// partial evaluation copy-propagates its result in place (ast.Transform
// sets the Value of each term it walks), so it reads its own copy of the
// bundle's data, which every other evaluation shares. What it reads of
// data.store, and data whole, is its own already (Read builds it).
type copyingStore struct{ *dataStore }

func (c copyingStore) Read(ctx context.Context, t storage.Transaction, path storage.Path) (any, error) {
	v, err := c.dataStore.Read(ctx, t, path)
	if err != nil || len(path) == 0 || path[0] == permatrix.StoreRoot {
		return v, err
	}
	if av, ok := v.(ast.Value); ok {
		return ast.NewTerm(av).Copy().Value, nil
	}
	return v, nil
}

// walk follows path into v (object keys; array indexes as numbers, read
// as OPA's store reads them: util.Atoi, "1.0" is 1).
func walk(v ast.Value, path []string) ast.Value {
	for _, seg := range path {
		switch x := v.(type) {
		case ast.Object:
			t := x.Get(ast.StringTerm(seg))
			if t == nil {
				return nil
			}
			v = t.Value
		case *ast.Array:
			i, ok := util.Atoi(seg)
			if !ok || i < 0 || i >= x.Len() {
				return nil
			}
			v = x.Elem(i).Value
		default:
			return nil
		}
	}
	return v
}

const revisionKey = "revision"

// readStore reads a path below data.store from a snapshot; nil means the
// document does not exist.
func readStore(snap store.Snapshot, path []string) (ast.Value, error) {
	if len(path) == 0 {
		return storeDocument(snap)
	}
	if path[0] == revisionKey {
		if len(path) > 1 {
			return nil, nil
		}
		return ast.Number(strconv.FormatUint(snap.Revision(), 10)), nil
	}
	key, leaf, rest, ok := store.DocKey(path)
	if !ok {
		return nil, nil
	}
	if leaf {
		raw, err := snap.Get(key)
		if err != nil || raw == nil {
			return nil, err
		}
		v, err := parseLeaf(raw)
		if err != nil {
			return nil, fmt.Errorf("data.store%q: %w", path, err)
		}
		return walk(v, rest), nil
	}
	return subtreeAt(snap, key, len(path) == 1, nil) // topdown's: no shared terms (parseLeaf)
}

// subtreeAt is the object below key (a subtree's key, not a leaf's), nil
// if there is none — but an index (index: data.store.grants, ...), which
// is an empty object then: data.store whole holds each of them, and so
// does the export the stock opa reads.
func subtreeAt(snap store.Snapshot, key []byte, index bool, ts terms) (ast.Value, error) {
	obj, _, err := subtreeUpTo(snap, append(key, 0), -1, ts)
	switch {
	case err != nil:
		return nil, err
	case obj == nil && index:
		return ast.NewObject(), nil
	case obj == nil:
		return nil, nil
	}
	return obj, nil
}

// storeDocument is the whole of data.store (what GET /v1/export streams).
func storeDocument(snap store.Snapshot) (ast.Value, error) {
	doc := ast.NewObject(ast.Item(ast.StringTerm(revisionKey), ast.NewTerm(ast.Number(strconv.FormatUint(snap.Revision(), 10)))))
	for _, ix := range store.DocIndexes {
		sub, err := subtree(snap, store.Prefix("d", ix))
		if err != nil {
			return nil, err
		}
		if sub == nil {
			sub = ast.NewObject()
		}
		doc.Insert(ast.StringTerm(ix), ast.NewTerm(sub))
	}
	return doc, nil
}

// subtree builds the object of every key below prefix (which ends with the
// separator), nil if there is none. Keys come sorted, so the objects on the
// path to the previous key are reused while the next key shares them.
func subtree(snap store.Snapshot, prefix []byte) (ast.Object, error) {
	obj, _, err := subtreeUpTo(snap, prefix, -1, nil) // topdown's: no shared terms (parseLeaf)
	return obj, err
}

// subtreeUpTo is subtree when there are at most max keys below prefix
// (complete); with more, it stops reading (not complete, obj partial).
// A negative max is no limit. Strings ts holds are its shared terms.
func subtreeUpTo(snap store.Snapshot, prefix []byte, max int, ts terms) (obj ast.Object, complete bool, err error) {
	b := &subtreeBuilder{}
	return b.build(snap, prefix, max, ts)
}

// subtreeBuilder builds the object of the keys below a prefix as a Scan
// hands them over. An evaluation keeps one (storeNodes) for the units it
// reads: its buffers and its callback, bound once, are not made again for
// each unit.
type subtreeBuilder struct {
	prefix int // the prefix's length
	max, n int
	ts     terms
	root   ast.Object
	stack  []openObject // objects along the previous key's path, not in their parents yet
	prev   [][]byte     // the previous key's segments (slices of the key: valid during the scan)
	segs   [][]byte     // the key's segments
	leaf   func(k, raw []byte) error
}

// openObject is an object being filled, and its key in its parent (stack[i-1],
// or the root). It goes into its parent once full (subtreeBuilder.close):
// an OPA object's hash sums its values' hashes as they are inserted, and
// an object inserted empty then filled would hash as empty — a set or an
// object's key would then miss the same value built any other way.
type openObject struct {
	key *ast.Term
	obj ast.Object
}

// close puts the open objects from the nth on into their parents,
// innermost first: they are full (keys come sorted).
func (b *subtreeBuilder) close(n int) {
	for i := len(b.stack) - 1; i >= n; i-- {
		parent := b.root
		if i > 0 {
			parent = b.stack[i-1].obj
		}
		parent.Insert(b.stack[i].key, ast.NewTerm(b.stack[i].obj))
		b.stack[i] = openObject{}
	}
	b.stack = b.stack[:n]
}

// build is subtreeUpTo, with b's buffers. It leaves b holding nothing of
// what it read.
func (b *subtreeBuilder) build(snap store.Snapshot, prefix []byte, max int, ts terms) (obj ast.Object, complete bool, err error) {
	if b.leaf == nil {
		b.leaf = b.add
	}
	b.prefix, b.max, b.n, b.ts = len(prefix), max, 0, ts
	err = snap.Scan(prefix, nil, b.leaf)
	b.close(0)
	obj, complete = b.root, max < 0 || b.n <= max
	b.reset()
	return obj, complete, err
}

// reset makes b hold nothing of the scan it built (also of one a panic
// ended), only its buffers.
func (b *subtreeBuilder) reset() {
	clear(b.stack[:cap(b.stack)])
	clear(b.prev[:cap(b.prev)])
	clear(b.segs[:cap(b.segs)])
	b.root, b.stack, b.prev, b.segs, b.ts = nil, b.stack[:0], b.prev[:0], b.segs[:0], nil
}

// add puts the leaf of key k below the root, reusing the objects on the
// path to the previous key while k shares it (keys come sorted).
func (b *subtreeBuilder) add(k, raw []byte) error {
	if b.n++; b.max >= 0 && b.n > b.max {
		return store.ErrStop
	}
	leaf, err := parseLeafWith(raw, b.ts)
	if err != nil {
		return corruptLeafAt(k, err)
	}
	b.put(k, ast.NewTerm(leaf))
	return nil
}

// corruptLeafAt is the error of the leaf of key k that does not parse.
func corruptLeafAt(k []byte, err error) error {
	return &corruptLeaf{fmt.Errorf("%q: %w", store.Segments(k), err)}
}

// put is add of a leaf parsed already.
func (b *subtreeBuilder) put(k []byte, leaf *ast.Term) {
	segs := b.segs[:0]
	for rest := k[b.prefix:]; ; {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			segs = append(segs, rest)
			break
		}
		segs = append(segs, rest[:i])
		rest = rest[i+1:]
	}
	if b.root == nil {
		b.root = ast.NewObject()
	}
	shared := 0
	for shared < len(b.prev)-1 && shared < len(segs)-1 && bytes.Equal(b.prev[shared], segs[shared]) {
		shared++
	}
	b.close(shared)
	parent := b.root
	if shared > 0 {
		parent = b.stack[shared-1].obj
	}
	for _, s := range segs[shared : len(segs)-1] {
		child := ast.NewObject()
		b.stack = append(b.stack, openObject{b.ts.segmentBytes(s), child})
		parent = child
	}
	parent.Insert(b.ts.segmentBytes(segs[len(segs)-1]), leaf)
	b.prev, b.segs = segs, b.prev
}

// corruptLeaf is a stored leaf that does not parse (a damaged file): it
// fails the reads that take it, and only those (storeDoc.unit).
type corruptLeaf struct{ err error }

func (c *corruptLeaf) Error() string { return c.err.Error() }
func (c *corruptLeaf) Unwrap() error { return c.err }

// leafValue parses a stored JSON value as an AST value: one value, and
// nothing after it but white space (json.Valid's rule, and the store
// check's: json.Unmarshal).
func leafValue(raw []byte) (ast.Value, error) {
	switch {
	case bytes.Equal(raw, []byte("true")):
		return ast.Boolean(true), nil
	case len(raw) == 0:
		// permatrix writes no data leaf empty (the empty values are index
		// entries', outside data.store): damage, as bytes after a value.
		return nil, errEmptyLeaf
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, err
	}
	// Anything after the value but white space is damage: dec.More does
	// not see a closing bracket or brace ("x"], 1}) as more, and the value
	// alone would be read as if the leaf held it.
	if rest := raw[dec.InputOffset():]; len(bytes.TrimLeft(rest, " \t\r\n")) > 0 {
		return nil, fmt.Errorf("data after the JSON value: %q", clipped(rest))
	}
	return ast.InterfaceToValue(x)
}

var errEmptyLeaf = errors.New("an empty leaf: no JSON value")

// clipped is b, or its first 16 bytes: an error names what follows a
// damaged leaf's value, not all of it.
func clipped(b []byte) []byte {
	if len(b) > 16 {
		return b[:16]
	}
	return b
}
