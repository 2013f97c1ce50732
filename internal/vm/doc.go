// Package vm evaluates Rego without OPA's topdown evaluator: a query is
// planned by OPA's own planner into its intermediate representation
// (package ir: the plan `opa build -t plan` writes, the one OPA compiles to
// Wasm) and the plan is interpreted here, statement by statement, over AST
// values.
//
// Why: topdown is a general unifier that re-derives, for every decision,
// what the planner works out once — which rule bodies to try, in what
// order, with which locals. permatrix asks the same few queries (a check's
// decision, a write's verdict) millions of times, so it plans them once
// when a bundle is activated and runs the plan.
//
// Invariants:
//   - Semantics are the planner's: every statement does what OPA's Wasm
//     compiler does with it (break indexes count blocks, a statement that is
//     undefined ends its block, a scan's body is one block), and builtins
//     and errors are topdown's (a Program is strict about builtin errors,
//     Lenient is topdown's default; conflicts are topdown's
//     eval_conflict_error). Where the Wasm compiler and topdown part, topdown
//     wins: data is read as topdown reads its store (data.x[2] is
//     data.x["2"]). conformance_test.go holds the interpreter to OPA's own
//     conformance cases (test/cases/testdata/v1, the suite topdown and the
//     Wasm runtime pass) over data in memory and over data read lazily,
//     and to its own cases (testdata/cases.yaml), themselves checked against
//     topdown; testdata/exceptions.yaml lists the cases it is excused from.
//   - A plan is prepared once and is immutable; each evaluation has its own
//     frames, so a Program serves any number of goroutines. Evaluations
//     share only values nothing changes: what Constants keeps (the value
//     of a rule of fixed data: no input, no varying root key of data, no
//     with, no builtin whose value is not a function of its arguments,
//     computed once outside any with and then only read, as data is), and
//     the literals of constants made when the plan is prepared, which an
//     add into their local copies first, and the caller's string terms a
//     plan evaluates its string constants as (SharingStrings), which
//     nothing writes into. An evaluation's state is pooled:
//     every frame is cleared when its call returns, the rule values kept
//     outside a with are listed and cleared at the end, and an evaluation
//     that did not return (a panic recovered above) is not pooled.
//   - Nothing here writes to data: values the plan builds are new; values
//     read from data or input are never changed (with copies what it
//     replaces).
//   - A fault is an error, never a value: a builtin error (unless
//     Lenient), a conflict, an unsupported statement or a cancelled context
//     ends the evaluation.
//   - data is read lazily through a Document: a reference into it is
//     resolved key by key, and only a use other than another lookup (a
//     comparison, an iteration, a call) reads a subtree whole. A lookup
//     that finds nothing may be known only then: the statement using it is
//     undefined, as the lookup would have been. A scan over a Document
//     that hands out its members (Members) does not read it whole: each
//     value is a Bound document, read as its uses ask and looked up as a
//     term is (a variable's value, not data's storage path), so a scan
//     for keys reads no value. A with on a part of data
//     lays its value over data as topdown's over its store (overlaid):
//     the rest is still read on demand and found by its storage keys.
package vm
