package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// GoBench is one Go benchmark's medians over its -count runs.
type GoBench struct {
	Package string             `json:"package"`
	Name    string             `json:"name"`
	Runs    int                `json:"runs"`
	Median  map[string]float64 `json:"median"` // unit → median: ns/op, B/op, allocs/op, custom metrics
}

var reBenchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// goBench runs `go test pkg -run ^$ -bench pattern` in the repository,
// with env added to the environment, and returns each benchmark's medians.
func goBench(repo, logDir string, env []string, pkg, pattern, benchtime string, count int) ([]GoBench, error) {
	name := "gobench-" + strings.ReplaceAll(strings.Trim(pkg, "./"), "/", "-")
	err := run(name, repo, logDir, env, "go", "test", pkg, "-run", "^$", "-bench", pattern,
		"-benchtime", benchtime, "-count", strconv.Itoa(count), "-benchmem")
	if err != nil {
		return nil, err
	}
	return parseBench(filepath.Join(logDir, name+".log"), pkg)
}

func parseBench(path, pkg string) ([]GoBench, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	values := map[string]map[string][]float64{}
	var order []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := reBenchLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		if values[m[1]] == nil {
			values[m[1]] = map[string][]float64{}
			order = append(order, m[1])
		}
		fields := strings.Fields(m[3])
		for i := 0; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			values[m[1]][fields[i+1]] = append(values[m[1]][fields[i+1]], v)
		}
	}
	var out []GoBench
	for _, name := range order {
		b := GoBench{Package: pkg, Name: name, Median: map[string]float64{}}
		for unit, vs := range values[name] {
			b.Median[unit] = median(vs)
			b.Runs = max(b.Runs, len(vs))
		}
		out = append(out, b)
	}
	return out, sc.Err()
}

func median(vs []float64) float64 {
	s := append([]float64(nil), vs...)
	sort.Float64s(s)
	n := len(s)
	if n == 0 {
		return 0
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
