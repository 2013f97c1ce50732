package store

import (
	"bufio"
	"encoding/json"
	"io"

	"github.com/permatrix/permatrix"
)

// Record lines: what WriteRecords writes and an import takes besides
// assignment objects — one record of the store a line, each an object
// with one key that names its kind.
type (
	// CustomRoleLine is a custom role's line: {"custom_role": {…}}.
	CustomRoleLine struct {
		CustomRole permatrix.Role `json:"custom_role"`
	}
	// ProjectLine is a project's line: {"project": {…}}.
	ProjectLine struct {
		Project permatrix.Project `json:"project"`
	}
	// MembershipLine is a group member's line: {"membership": {…}}.
	MembershipLine struct {
		Membership permatrix.Membership `json:"membership"`
	}
	// ExportHeaderLine is an export's first line:
	// {"export": {"version": 1, "revision": R}}. An import that begins
	// with it is an export, taken only whole: it must end with its
	// ExportEndLine.
	ExportHeaderLine struct {
		Export ExportHeader `json:"export"`
	}
	// ExportEndLine is an export's last line:
	// {"end": {"records": N, "revision": R}}. Without it an export cut
	// short on a line boundary would import as a smaller store.
	ExportEndLine struct {
		End ExportEnd `json:"end"`
	}
)

// ExportHeader is what an export's first line says: the version of its
// lines (RecordsVersion) and the revision of the store it was made at.
type ExportHeader struct {
	Version  int    `json:"version"`
	Revision uint64 `json:"revision"`
}

// ExportEnd is what an export's last line says: how many record lines
// came before it, and the revision (the header's).
type ExportEnd struct {
	Records  int64  `json:"records"`
	Revision uint64 `json:"revision"`
}

// RecordsVersion is the version of the lines WriteRecords writes.
const RecordsVersion = 1

// WriteRecords writes every record of a snapshot as NDJSON, one a line, in
// the order an import into an empty store can take them: custom roles
// (before the assignments of them), projects, assignments with their ids,
// group memberships — between a header (ExportHeaderLine) and an end line
// counting them (ExportEndLine), so that an export cut short is told from a
// whole one. It streams, as WriteDocument does: memory stays constant
// whatever the store's size.
func WriteRecords(w io.Writer, s Snapshot) error {
	out := &firstError{w: w}
	bw := bufio.NewWriterSize(out, 64<<10)
	var records int64
	line := func(v any) error {
		records++
		if out.err != nil {
			return out.err // the reader is gone: read no more
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		bw.Write(b)
		return bw.WriteByte('\n')
	}
	if err := line(ExportHeaderLine{ExportHeader{Version: RecordsVersion, Revision: s.Revision()}}); err != nil {
		return err
	}
	records = 0 // the header is no record
	roles := Prefix(nsDoc, ixRoles)
	err := s.Scan(roles, nil, func(k, v []byte) error {
		segs := Segments(k)
		var rv roleValue
		if len(segs) != 4 || unmarshalRecord(v, &rv) != nil || rv.Permissions == nil {
			return corrupt(k, "not a role")
		}
		return line(CustomRoleLine{permatrix.Role{System: segs[2], Name: segs[3], Permissions: rv.Permissions}})
	})
	if err != nil {
		return err
	}
	err = s.Scan(Prefix(nsDoc, ixProjects), nil, func(k, v []byte) error {
		segs := Segments(k)
		pv, err := unmarshalProject(v)
		if len(segs) != 4 || err != nil {
			return corrupt(k, "not a project")
		}
		return line(ProjectLine{permatrix.Project{System: segs[2], ID: segs[3], CreatedBy: pv.CreatedBy, Kind: pv.Kind}})
	})
	if err != nil {
		return err
	}
	err = s.Scan(Prefix(nsDoc, ixGrants), nil, func(k, v []byte) error {
		a, err := assignmentOf(k, v)
		if err != nil {
			return err
		}
		return line(a)
	})
	if err != nil {
		return err
	}
	err = s.Scan(Prefix(nsDoc, ixMemberships), nil, func(k, _ []byte) error {
		segs := Segments(k)
		if len(segs) != 4 {
			return corrupt(k, "not a membership")
		}
		return line(MembershipLine{permatrix.Membership{Group: segs[3], User: segs[2]}})
	})
	if err != nil {
		return err
	}
	if err := line(ExportEndLine{ExportEnd{Records: records, Revision: s.Revision()}}); err != nil {
		return err
	}
	return bw.Flush()
}
