// Package docs holds the tests that keep the documentation true to the
// code.
package docs

import (
	"bufio"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// packagesHeading opens the section of architecture.md whose table names
// every package.
const packagesHeading = "## Packages"

// tableNames returns the names in the first column of the package table
// of architecture.md, without a trailing slash: "wire", "cmd/graymesh",
// "bench/..." (a whole tree).
func tableNames(t *testing.T) []string {
	t.Helper()
	f, err := os.Open("architecture.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	code := regexp.MustCompile("`([^`]+)`")
	var names []string
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == packagesHeading
		case in && strings.HasPrefix(line, "| `"):
			first := strings.SplitN(line, "|", 3)[1]
			for _, m := range code.FindAllStringSubmatch(first, -1) {
				names = append(names, strings.TrimSuffix(m[1], "/"))
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(names) == 0 {
		t.Fatalf("architecture.md: no package table under %q", packagesHeading)
	}
	return names
}

// modulePackage is one package of `go list ./...`, its path relative to
// the module.
type modulePackage struct {
	dir string
	// needsRow is false for what the table may leave out: packages of
	// tests only (e2e, this one) and test helpers: those that import
	// testing, and those named like Go's own helpers (httptest, fstest).
	needsRow bool
}

// modulePackages lists the module's packages with the go command.
func modulePackages(t *testing.T) []modulePackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}} {{len .GoFiles}} {{join .Imports " "}}`, "./...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	mod, err := exec.Command("go", "list", "-m").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	prefix := strings.TrimSpace(string(mod)) + "/"
	var pkgs []modulePackage
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		helper := slices.Contains(fields[2:], "testing") || strings.HasSuffix(fields[0], "test")
		pkgs = append(pkgs, modulePackage{dir: strings.TrimPrefix(fields[0], prefix), needsRow: fields[1] != "0" && !helper})
	}
	return pkgs
}

// names reports whether the table's names cover dir: named as it is, or
// inside a tree named "dir/...".
func names(table []string, dir string) bool {
	for _, n := range table {
		if n == dir {
			return true
		}
		if tree, ok := strings.CutSuffix(n, "/..."); ok && (dir == tree || strings.HasPrefix(dir, tree+"/")) {
			return true
		}
	}
	return false
}

// TestArchitectureNamesEveryPackage keeps docs/architecture.md's package
// table true: a new package needs its row, and a row must name a package
// that exists (a moved one must move in the table too).
func TestArchitectureNamesEveryPackage(t *testing.T) {
	table := tableNames(t)
	pkgs := modulePackages(t)
	for _, p := range pkgs {
		if p.needsRow && !names(table, p.dir) {
			t.Errorf("package %s is not in docs/architecture.md's table: add a row saying what it owns", p.dir)
		}
	}
	for _, n := range table {
		exists := slices.ContainsFunc(pkgs, func(p modulePackage) bool { return names([]string{n}, p.dir) })
		if !exists {
			t.Errorf("docs/architecture.md's table names %s, which is no package of the module", n)
		}
	}
}
