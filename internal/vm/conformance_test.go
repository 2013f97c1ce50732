package vm_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/test/cases"
	"github.com/open-policy-agent/opa/v1/test/cases/testdata"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/types"
	"github.com/open-policy-agent/opa/v1/util"

	"github.com/permatrix/permatrix/internal/vm"
)

// test.sleep is the builtin OPA's runners add for the cases that need
// time to pass (time/time_caching).
func init() {
	rego.RegisterBuiltin1(&rego.Function{
		Name: "test.sleep",
		Decl: types.NewFunction(types.Args(types.S), types.NewNull()),
	}, func(_ rego.BuiltinContext, op *ast.Term) (*ast.Term, error) {
		d, _ := time.ParseDuration(string(op.Value.(ast.String)))
		time.Sleep(d)
		return ast.NullTerm(), nil
	})
}

// TestConformance holds the vm to OPA's own evaluation test cases (the
// suite topdown and OPA's Wasm runtime run) and to its own (testdata/cases.yaml):
// each case's query is planned with its modules and evaluated by the vm
// over its data and input, and the result set, definedness or error is
// compared with the case's — once over data in memory (vm.Value), once
// over data read lazily (lazyDocument). An error need only be one: its
// code or wording differing from the case's is logged. A case the planner
// refuses is skipped with the planner's reason; a case listed in
// testdata/exceptions.yaml is skipped with the reason given there.
//
//	go test ./internal/vm -run Conformance -v | grep -E 'SKIP|differs|conformance:'
//
// lists what was skipped, the errors that differ and the counts.
func TestConformance(t *testing.T) {
	exceptions := map[string]string{}
	bs, err := os.ReadFile("testdata/exceptions.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := util.Unmarshal(bs, &exceptions); err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	outcomes := map[string]int{}
	for _, tc := range conformanceCases(t) {
		t.Run(tc.Note, func(t *testing.T) {
			defer func() {
				switch {
				case t.Failed():
					outcomes["fail"]++
				case t.Skipped():
					outcomes["skip"]++
				default:
					outcomes["pass"]++
				}
			}()
			if reason, ok := exceptions[tc.Note]; ok {
				used[tc.Note] = true
				t.Skip("exception: " + reason)
			}
			runCase(t, tc)
		})
	}
	for note := range exceptions {
		if !used[note] {
			t.Errorf("testdata/exceptions.yaml: %q is no case's note", note)
		}
	}
	t.Logf("conformance: %d pass, %d skip, %d fail", outcomes["pass"], outcomes["skip"], outcomes["fail"])
}

// conformanceCases are OPA's v1 cases, from the copy embedded in OPA's
// module (cases.Load reads a directory on disk), and the vm's own
// (testdata/cases.yaml), sorted by note.
func conformanceCases(t *testing.T) []cases.TestCase {
	opa, own := loadCases(t, testdata.V1, "v1"), ownCases(t)
	if len(opa) == 0 {
		t.Fatal("no conformance cases found")
	}
	return cases.Set{Cases: append(opa, own...)}.Sorted().Cases
}

// ownCases are the vm's own cases: what OPA's suite leaves out.
func ownCases(t *testing.T) []cases.TestCase {
	return loadCases(t, os.DirFS("testdata"), "cases.yaml")
}

func loadCases(t *testing.T, fsys fs.FS, dir string) []cases.TestCase {
	var all []cases.TestCase
	err := fs.WalkDir(fsys, dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".yaml") {
			return err
		}
		bs, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		var set cases.Set
		if err := util.Unmarshal(bs, &set); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		for i := range set.Cases {
			set.Cases[i].Filename = path
		}
		all = append(all, set.Cases...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// TestOwnCasesAreTopdowns holds the vm's own cases to topdown, as OPA's
// runner does (exported_test.go): their expectations are topdown's.
func TestOwnCasesAreTopdowns(t *testing.T) {
	for _, tc := range ownCases(t) {
		t.Run(tc.Note, func(t *testing.T) {
			ctx := context.Background()
			modules := map[string]string{}
			for i, m := range tc.Modules {
				modules[fmt.Sprintf("test-%d.rego", i)] = m
			}
			compiler, err := ast.CompileModules(modules)
			if err != nil {
				t.Fatal(err)
			}
			query, err := compiler.QueryCompiler().Compile(ast.MustParseBody(tc.Query))
			if err != nil {
				t.Fatal(err)
			}
			data := map[string]any{}
			if tc.Data != nil {
				data = *tc.Data
			}
			store := inmem.NewFromObject(data)
			txn := storage.NewTransactionOrDie(ctx, store)
			defer store.Abort(ctx, txn)
			q := topdown.NewQuery(query).WithCompiler(compiler).WithStore(store).WithTransaction(txn).
				WithStrictBuiltinErrors(tc.StrictError)
			if input := caseInput(t, tc); input != nil {
				q = q.WithInput(ast.NewTerm(input))
			}
			qrs, err := q.Run(ctx)
			rs := make([]ast.Object, len(qrs))
			for i, qr := range qrs {
				rs[i] = ast.NewObject()
				for k, v := range qr {
					rs[i].Insert(ast.StringTerm(string(k)), v)
				}
			}
			check(t, tc, rs, err)
		})
	}
}

func runCase(t *testing.T, tc cases.TestCase) {
	ctx := context.Background()
	for k, v := range tc.Env {
		t.Setenv(k, v)
	}
	data := map[string]any{}
	if tc.Data != nil {
		data = *tc.Data
	}
	// The store stays empty: data is the vm's to read, and rego would hold
	// modules against a store's data (topdown's runner compiles without).
	opts := []func(*rego.Rego){rego.SetRegoVersion(ast.RegoV1)}
	if tc.ExperimentalKeywords {
		opts = append(opts, rego.Capabilities(ast.CapabilitiesForThisVersion(ast.CapabilitiesExperimentalKeywords(true))))
	}
	for i, m := range tc.Modules {
		opts = append(opts, rego.Module(fmt.Sprintf("test-%d.rego", i), m))
	}
	query, err := ast.ParseBodyWithOpts(tc.Query, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err == nil {
		var p *vm.Program
		if p, err = vm.Plan(ctx, query, opts...); err == nil {
			evalCase(t, tc, p, data)
			return
		}
	}
	// Topdown's runner compiles every case: an error here is the vm's or
	// the planner's.
	var compile ast.Errors
	switch {
	case errors.Is(err, vm.ErrUnsupported):
		t.Skipf("vm: %v", err)
	case errors.As(err, &compile):
		t.Fatalf("compile: %v", err)
	default:
		t.Skipf("planner: %v", err)
	}
}

func evalCase(t *testing.T, tc cases.TestCase, p *vm.Program, data map[string]any) {
	dv, err := ast.InterfaceToValue(data)
	if err != nil {
		t.Fatal(err)
	}
	if !tc.StrictError {
		p = p.Lenient()
	}
	input := caseInput(t, tc)
	rs, err := p.Results(context.Background(), input, vm.Value(dv))
	check(t, tc, rs, err)
	// Again with data read on demand, as permatrix's store is: a lookup
	// that finds nothing is found out only when its value is used.
	t.Run("lazy", func(t *testing.T) {
		rs, err := p.Results(context.Background(), input, lazyDocument{ast.NewTerm(dv)})
		check(t, tc, rs, err)
	})
	// Again with data whose objects a scan iterates member by member
	// (vm.Members), as permatrix's store units are: a scan's values are
	// read as they are used.
	t.Run("members", func(t *testing.T) {
		rs, err := p.Results(context.Background(), input, membersDocument{t: ast.NewTerm(dv)})
		check(t, tc, rs, err)
	})
	// Again keeping constant rules, filled first by an evaluation of
	// another input: a rule kept that reads input would keep its value.
	t.Run("constants", func(t *testing.T) {
		c := p.Constants()
		_, _ = c.Results(context.Background(), ast.MustParseTerm(`{"another": "input"}`).Value, vm.Value(dv))
		rs, err := c.Results(context.Background(), input, vm.Value(dv))
		check(t, tc, rs, err)
	})
}

// lazyDocument is data read on demand, as lazily as the Document contract
// allows (and as permatrix's store is): a string key's child of an object,
// or of what does not exist, is a Document whether or not it exists.
type lazyDocument struct{ t *ast.Term } // t nil: it does not exist

func (d lazyDocument) Child(key *ast.Term) (*ast.Term, vm.Document, error) {
	var child *ast.Term
	obj := d.t == nil
	if d.t != nil {
		child, _, _ = vm.Value(d.t.Value).Child(key)
		_, obj = d.t.Value.(ast.Object)
	}
	if _, str := key.Value.(ast.String); str && obj {
		return nil, lazyDocument{child}, nil
	}
	return child, nil, nil
}

func (d lazyDocument) Value() (*ast.Term, error) { return d.t, nil }

// caseInput is the case's input; nil when it has none.
func caseInput(t *testing.T, tc cases.TestCase) ast.Value {
	switch {
	case tc.InputTerm != nil:
		term, err := ast.ParseTerm(*tc.InputTerm)
		if err != nil {
			t.Fatal(err)
		}
		return term.Value
	case tc.Input != nil:
		input, err := ast.InterfaceToValue(*tc.Input)
		if err != nil {
			t.Fatal(err)
		}
		return input
	}
	return nil
}

// check compares an evaluation's results or error with the case's
// expectation.
func check(t *testing.T, tc cases.TestCase, rs []ast.Object, err error) {
	switch {
	case tc.WantError != nil || tc.WantErrorCode != nil:
		if err == nil {
			t.Fatalf("want error %s, got results %v", wantedError(tc), rs)
		}
		noteErrorMismatch(t, tc, err)
	case err != nil:
		t.Fatalf("unexpected error: %v", err)
	case tc.WantResult != nil:
		want, got := wantSet(t, *tc.WantResult), gotSet(t, rs, tc.SortBindings, tc.IgnoreGeneratedVars)
		if want.Compare(got) != 0 {
			t.Fatalf("results:\nwant %v\n got %v", want, got)
		}
	case tc.WantDefined != nil:
		if got := len(rs) > 0; got != *tc.WantDefined {
			t.Fatalf("defined: want %v, got %v (%v)", *tc.WantDefined, got, rs)
		}
	default:
		t.Fatal("the case expects nothing")
	}
}

func wantedError(tc cases.TestCase) string {
	var s []string
	if tc.WantErrorCode != nil {
		s = append(s, *tc.WantErrorCode)
	}
	if tc.WantError != nil {
		s = append(s, fmt.Sprintf("%q", *tc.WantError))
	}
	return strings.Join(s, " ")
}

// noteErrorMismatch logs where err differs from the error the case wants:
// the vm must fail where topdown fails, its wording may differ.
func noteErrorMismatch(t *testing.T, tc cases.TestCase, err error) {
	var te *topdown.Error
	code := ""
	if errors.As(err, &te) {
		code = te.Code
	}
	if tc.WantErrorCode != nil && code != *tc.WantErrorCode ||
		tc.WantError != nil && !strings.Contains(err.Error(), *tc.WantError) {
		t.Logf("error differs: want %s, got %v (code %q)", wantedError(tc), err, code)
	}
}

func wantSet(t *testing.T, want []map[string]any) ast.Set {
	out := ast.NewSet()
	for _, b := range want {
		obj := ast.NewObject()
		for k, v := range b {
			val, err := ast.InterfaceToValue(v)
			if err != nil {
				t.Fatal(err)
			}
			obj.Insert(ast.StringTerm(k), ast.NewTerm(val))
		}
		out.Add(ast.NewTerm(obj))
	}
	return out
}

// gotSet is the results as topdown's runner compares them: through JSON
// (sets become arrays), without the variable rego adds to capture a
// query's value ("^term..." for a target plugin).
func gotSet(t *testing.T, rs []ast.Object, sortBindings, ignoreGenerated bool) ast.Set {
	out := ast.NewSet()
	for _, r := range rs {
		obj := ast.NewObject()
		err := r.Iter(func(k, v *ast.Term) error {
			name := string(k.Value.(ast.String))
			if strings.HasPrefix(name, "^") || ignoreGenerated && strings.HasPrefix(name, "__localq") {
				return nil
			}
			j, err := ast.JSON(v.Value)
			if err != nil {
				return err
			}
			if a, ok := j.([]any); ok && sortBindings {
				slices.SortFunc(a, util.Compare)
			}
			val, err := ast.InterfaceToValue(j)
			if err != nil {
				return err
			}
			obj.Insert(k, ast.NewTerm(val))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		out.Add(ast.NewTerm(obj))
	}
	return out
}
