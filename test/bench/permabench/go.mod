// The benchmark runner: a module of its own, so that the load generator
// (vegeta) never touches permatrix's go.mod. It uses the repository's
// test/bench/dataset through the replace below.
module github.com/permatrix/permatrix/test/bench/permabench

go 1.26.0

require (
	github.com/permatrix/permatrix v0.0.0
	github.com/tsenart/vegeta/v12 v12.13.0
	golang.org/x/exp v0.0.0-20261113113407-e3970619a1a4
)

require (
	github.com/influxdata/tdigest v0.0.1 // indirect
	github.com/josharian/intern v1.0.0 // indirect
	github.com/mailru/easyjson v0.7.7 // indirect
	github.com/rs/dnscache v0.0.0-20230804202142-fc85eb664529 // indirect
	golang.org/x/net v0.61.0 // indirect
	golang.org/x/sync v0.24.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)

replace github.com/permatrix/permatrix => ../../..
