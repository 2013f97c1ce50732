package store

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/permatrix/permatrix"
)

// WriteDocument writes {"store": data.store} of a snapshot as JSON: the
// document the policies read, which is also what the stock opa needs to
// decide as the server does (GET /v1/export). It streams: memory stays
// constant whatever the store's size. Keys come in key order, so two
// snapshots of the same revision give the same bytes.
func WriteDocument(w io.Writer, s Snapshot) error {
	out := &firstError{w: w}
	bw := bufio.NewWriterSize(out, 64<<10)
	bw.WriteString(`{"` + permatrix.StoreRoot + `":{"revision":`)
	bw.WriteString(strconv.FormatUint(s.Revision(), 10))
	for _, ix := range DocIndexes {
		bw.WriteString(`,`)
		writeString(bw, ix)
		bw.WriteString(`:{`)
		prefix := Prefix(nsDoc, ix)
		var open []string // the objects open below the index, outermost first
		first := true
		err := s.Scan(prefix, nil, func(k, v []byte) error {
			if out.err != nil {
				return out.err // the reader is gone: read no more
			}
			segs := Segments(k[len(prefix):])
			shared := 0
			for shared < len(open) && shared < len(segs)-1 && open[shared] == segs[shared] {
				shared++
			}
			for range len(open) - shared {
				bw.WriteByte('}')
			}
			open = open[:shared]
			if !first {
				bw.WriteByte(',')
			}
			first = false
			for _, seg := range segs[shared : len(segs)-1] {
				writeString(bw, seg)
				bw.WriteString(`:{`)
				open = append(open, seg)
			}
			writeString(bw, segs[len(segs)-1])
			bw.WriteByte(':')
			if len(v) == 0 {
				bw.WriteString("null")
			} else {
				bw.Write(bytes.TrimSpace(v))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for range open {
			bw.WriteByte('}')
		}
		bw.WriteByte('}')
	}
	bw.WriteString("}}\n")
	return bw.Flush()
}

// firstError is a writer that keeps the first error of the one it writes
// to: once a write failed (an export's client went away), the scan that
// feeds it stops instead of reading the rest of the store for nothing.
type firstError struct {
	w   io.Writer
	err error
}

func (f *firstError) Write(p []byte) (int, error) {
	if f.err != nil {
		return 0, f.err
	}
	n, err := f.w.Write(p)
	f.err = err
	return n, err
}

func writeString(w *bufio.Writer, s string) {
	b, _ := json.Marshal(s)
	w.Write(b)
}

// ReadDocument loads an exported document ({"store": …}, what WriteDocument
// writes and GET /v1/export serves) into a new Memory store at the
// document's revision, with the assignment ids it names.
func ReadDocument(r io.Reader) (*Memory, error) {
	var doc struct {
		Store *struct {
			Revision    uint64                                                           `json:"revision"`
			Grants      map[string]map[string]map[string]map[string]map[string]grantLeaf `json:"grants"`
			Memberships map[string]map[string]bool                                       `json:"memberships"`
			Roles       map[string]map[string]roleValue                                  `json:"roles"`
			Projects    map[string]map[string]projectValue                               `json:"projects"`
		} `json:"store"`
	}
	dec := json.NewDecoder(r)
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("store document: %w", err)
	}
	if doc.Store == nil {
		return nil, fmt.Errorf("store document: no %q key (want the body of GET /v1/export)", permatrix.StoreRoot)
	}
	st := doc.Store
	m := NewMemory()
	tx := NewTx(context.Background(), Empty(0), m.NextID)
	for principal, systems := range st.Grants {
		for system, kinds := range systems {
			for kind, names := range kinds {
				for name, scopes := range names {
					for _, l := range scopes {
						a := permatrix.Assignment{ID: l.Assignment, Subject: principal, System: system, Scope: l.Scope}
						switch kind {
						case KindRole:
							a.Role = name
						case KindPermission:
							a.Permission = name
						default:
							return nil, fmt.Errorf("store document: grant of unknown kind %q", kind)
						}
						if err := tx.CreateAssignment(&a); err != nil {
							return nil, fmt.Errorf("store document: %w", err)
						}
					}
				}
			}
		}
	}
	for user, groups := range st.Memberships {
		for g := range groups {
			if err := tx.AddMember(permatrix.Membership{Group: g, User: user}); err != nil {
				return nil, fmt.Errorf("store document: %w", err)
			}
		}
	}
	for system, roles := range st.Roles {
		for name, r := range roles {
			if err := tx.PutRole(permatrix.Role{System: system, Name: name, Permissions: r.Permissions}); err != nil {
				return nil, fmt.Errorf("store document: %w", err)
			}
		}
	}
	for system, projects := range st.Projects {
		for id, p := range projects {
			if err := tx.PutProject(permatrix.Project{System: system, ID: id, CreatedBy: p.CreatedBy, Kind: p.Kind}); err != nil {
				return nil, fmt.Errorf("store document: %w", err)
			}
		}
	}
	for _, op := range tx.Batch().Ops {
		m.tree.ReplaceOrInsert(pending{key: op.Key, value: op.Value})
	}
	m.rev = st.Revision
	m.changes = NewChanges(st.Revision, 0)
	return m, nil
}
