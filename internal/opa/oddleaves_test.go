package opa_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/permatrix/permatrix/internal/store"
)

// TestVMAgreesWithTopdownOnOddLeaves: grant leaves no write of permatrix
// makes but a damaged or hand-edited store may hold — duplicate and
// case-variant keys, the layout's own key names as values and keys,
// numbers as keys, a number past float64, a 100 KiB string, nesting 300
// deep, a leaf that is no object — read whole, by constant key (the plan
// constants the vm shares with the leaves' keys, SharingStrings), and
// scanned, in a small unit and in one read whole: the vm answers each
// read as topdown does, value or failure.
func TestVMAgreesWithTopdownOnOddLeaves(t *testing.T) {
	leaf := `data.store.grants["user:odd"].blueprism.role["0"].service`
	reads := []string{
		leaf,
		leaf + `.assignment`,
		leaf + `.Assignment`,
		leaf + `["1"]`,
		leaf + `.scope.type`,
		leaf + `.assignment == "a1"`,
		leaf + `.assignment == "role"`,
		`[k | some k, _ in ` + leaf + `]`,
		`[[k, v] | some k, v in ` + leaf + `]`,
		`count(` + leaf + `)`,
		`json.marshal(data.store.grants["user:odd"].blueprism.role)`,
		`[k | some k, v in data.store.grants["user:odd"].blueprism.role; v.service.assignment == "a1"]`,
	}
	guarded := make([]string, len(reads))
	for i, r := range reads {
		guarded[i] = fmt.Sprintf("input.read == %d\n\tx := %s", i, r)
	}
	vm, td := readsPoliciesWith(t, store.NewMemory(), nil, guardedReads(guarded))
	odd := []string{
		`{"assignment":"a1","assignment":"a2","scope":{"type":"service"}}`,
		`{"Assignment":"a1","assignment":"a2","ASSIGNMENT":"a3","scope":{"type":"service","type":"project"}}`,
		`{"1":"one","01":"zero-one","1.0":"x","assignment":"a1","scope":{"type":"service"}}`,
		`{"assignment":1e400,"scope":{"type":"service"}}`,
		`{"assignment":123456789012345678901234567890,"scope":{"type":"service"}}`,
		`{"assignment":"` + strings.Repeat("x", 100<<10) + `","scope":{"type":"service"}}`,
		`{"assignment":"a1","scope":` + strings.Repeat(`{"type":`, 300) + `"service"` + strings.Repeat(`}`, 300) + `}`,
		`{}`,
		`"assignment"`,
		`123`,
		`[]`,
		`null`,
		`{"assignment":"role","role":"assignment","scope":"service","service":{"type":"scope"}}`,
		`{"assignment":"a1","scope":{"type":"service"},"via":"user:odd","":""}`,
		`{"assignment":"a1","scope":{"type":"service"},"\u0061ssignment":"a9"}`,
	}
	good := `{"assignment":"a1","scope":{"type":"service"},"via":"user:odd"}`
	answered, failed := 0, 0
	for i, bad := range odd {
		for _, fillers := range []int{0, 40} {
			m := store.NewMemory()
			b := &store.Batch{}
			put := func(v string, segs ...string) {
				b.Ops = append(b.Ops, store.Op{Key: store.Key(segs...), Value: []byte(v)})
			}
			put(bad, "d", "grants", "user:odd", "blueprism", "role", "0", "service")
			put(good, "d", "grants", "user:odd", "blueprism", "role", "1", "service")
			for f := range fillers {
				put(good, "d", "grants", "user:odd", "blueprism", "role", fmt.Sprintf("f%02d", f), "service")
			}
			if _, err := m.Commit(t.Context(), b); err != nil {
				t.Fatal(err)
			}
			snap, err := m.View()
			if err != nil {
				t.Fatal(err)
			}
			for r, read := range reads {
				in := readsInput()
				in["read"] = r
				vv, _, errV := vm.Verdict(t.Context(), snap, in)
				vt, _, errT := td.Verdict(t.Context(), snap, in)
				if (errV != nil) != (errT != nil) || !slices.Equal(vv, vt) {
					t.Errorf("leaf %d (%.60q, %d fillers) %s:\n vm      %.200q %v\n topdown %.200q %v", i, bad, fillers, read, vv, errV, vt, errT)
				}
				switch {
				case errV != nil:
					failed++
				case len(vv) > 0:
					answered++
				}
			}
			snap.Close()
		}
	}
	// Neither all failures nor all undefined: the reads read the leaves.
	t.Logf("%d reads answered, %d failed", answered, failed)
	if total := 2 * len(odd) * len(reads); answered < total/4 || failed == 0 {
		t.Fatalf("%d of %d reads answered, %d failed: the reads miss the leaves", answered, total, failed)
	}
}
