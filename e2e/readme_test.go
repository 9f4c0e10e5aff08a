package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// readmeMarker precedes each shell block of README.md and the docs that
// the tests below run: against the demo (TestReadmeCommands) or, with
// meshMarker, against the mesh demo (TestReadmeMesh).
const (
	readmeMarker = "<!-- readme-test:"
	meshMarker   = readmeMarker + " run this block against the mesh demo"
)

// shopDocs and meshDocs are the files whose marked blocks run, in this
// order, in one shell each: a block may use what an earlier one set.
var (
	shopDocs = []string{"README.md", "docs/tour.md", "docs/operating.md"}
	meshDocs = []string{"docs/mesh.md"}
)

// docBlock is one marked ```sh block.
type docBlock struct {
	file string
	line int // of its first command
	text string
	mesh bool
}

// markedBlocks returns the marked ```sh blocks of file (relative to the
// repository root), in order.
func markedBlocks(t *testing.T, file string) []docBlock {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, file))
	must(t, err)
	defer f.Close()
	var (
		blocks []docBlock
		cur    []string
		mesh   bool
		start  int
		state  int // 0 outside, 1 after a marker, 2 inside a marked block
	)
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		switch {
		case state == 0 && strings.HasPrefix(text, readmeMarker):
			state, mesh = 1, strings.HasPrefix(text, meshMarker)
		case state == 1:
			if text != "```sh" {
				t.Fatalf("%s:%d: a %s marker must be followed by a ```sh block, not %q", file, line, readmeMarker, text)
			}
			state, start = 2, line+1
		case state == 2 && text == "```":
			blocks = append(blocks, docBlock{file: file, line: start, text: strings.Join(cur, "\n"), mesh: mesh})
			cur, state = nil, 0
		case state == 2:
			cur = append(cur, text)
		}
	}
	must(t, sc.Err())
	if state != 0 {
		t.Fatalf("%s: a marked block is not closed", file)
	}
	return blocks
}

// docBlocks returns the marked blocks of files, all of one kind (mesh or
// not): a block for the other demo in them fails the test.
func docBlocks(t *testing.T, files []string, mesh bool) []docBlock {
	t.Helper()
	var out []docBlock
	for _, file := range files {
		for _, b := range markedBlocks(t, file) {
			if b.mesh != mesh {
				t.Fatalf("%s:%d: a block for the other demo; the files run against each demo are shopDocs and meshDocs", b.file, b.line)
			}
			out = append(out, b)
		}
	}
	return out
}

// Every marked block of the documentation runs: a file with markers is in
// shopDocs or meshDocs.
func TestReadmeMarkersAllRun(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	must(t, err)
	for _, path := range append(files, filepath.Join(repoRoot, "README.md")) {
		rel, err := filepath.Rel(repoRoot, path)
		must(t, err)
		if len(markedBlocks(t, rel)) > 0 && !slices.Contains(shopDocs, rel) && !slices.Contains(meshDocs, rel) {
			t.Errorf("%s has marked blocks, but no test runs them: add it to shopDocs or meshDocs", rel)
		}
	}
}

// blockScript is blocks as one bash script, each block's output preceded
// by a line naming it, with replacer applied.
func blockScript(blocks []docBlock, replacer *strings.Replacer) string {
	var script strings.Builder
	// No -e: a failing command shows in its block's output, and the checks
	// name the block.
	script.WriteString("set -u\n")
	for i, b := range blocks {
		fmt.Fprintf(&script, "printf '\\n@@block %d@@\\n'\n%s\n", i, replacer.Replace(b.text))
	}
	return script.String()
}

// runBlocks runs blocks in one bash at the repository root with env
// added, within timeout, and returns the whole output and a function
// giving the output of the one block containing an id.
func runBlocks(t *testing.T, blocks []docBlock, replacer *strings.Replacer, timeout time.Duration, env ...string) (string, func(string) string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", blockScript(blocks, replacer))
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("doc commands: %v\n%s", err, out)
	}
	outputs := map[int]string{}
	for _, part := range strings.Split(string(out), "\n@@block ")[1:] {
		var i int
		if _, err := fmt.Sscanf(part, "%d@@", &i); err != nil {
			t.Fatalf("output part %q: %v", part, err)
		}
		outputs[i] = part
	}
	return string(out), func(id string) string {
		t.Helper()
		found := -1
		for i, b := range blocks {
			if strings.Contains(b.text, id) {
				if found >= 0 {
					t.Fatalf("%s:%d and %s:%d both contain %q", blocks[found].file, blocks[found].line, b.file, b.line, id)
				}
				found = i
			}
		}
		if found < 0 {
			t.Fatalf("no marked block contains %q: the docs and this test drifted apart", id)
		}
		return outputs[found]
	}
}

// blockCheck is what the output of the block containing id must show.
type blockCheck struct {
	block   string
	want    []string
	count   map[string]int // -1: at least once
	notWant []string
}

func checkBlocks(t *testing.T, output func(string) string, checks []blockCheck) {
	t.Helper()
	for _, c := range checks {
		got := output(c.block)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("block with %q: output lacks %q:\n%s", c.block, w, got)
			}
		}
		for _, w := range c.notWant {
			if strings.Contains(got, w) {
				t.Errorf("block with %q: output has %q:\n%s", c.block, w, got)
			}
		}
		for w, n := range c.count {
			if (n >= 0 && strings.Count(got, w) != n) || (n < 0 && !strings.Contains(got, w)) {
				t.Errorf("block with %q: %q %d times, want %d:\n%s", c.block, w, strings.Count(got, w), n, got)
			}
		}
	}
}

// TestReadmeCommands runs the marked shell blocks of README.md, the tour
// and the operating guide, in order and in one shell, against the demo
// script started on free ports (the docs' addresses and .tools/shop/
// folder are replaced by the test's), and checks the outputs they promise.
func TestReadmeCommands(t *testing.T) {
	blocks := docBlocks(t, shopDocs, false)
	if len(blocks) < 12 {
		t.Fatalf("%v have %d marked blocks; the README's taste, the tour and the operating guide should be marked", shopDocs, len(blocks))
	}
	tracked, err := os.ReadFile(filepath.Join(repoRoot, "examples", "demo.yaml"))
	must(t, err)
	d := startDemo(t)

	replacer := strings.NewReplacer(
		"bin/graymesh", filepath.Join(binDir, "graymesh"),
		"127.0.0.1:10000", strings.TrimPrefix(d.listener, "http://"),
		"127.0.0.1:18080", strings.TrimPrefix(d.admin, "http://"),
		".tools/shop/", d.work+"/",
		"127.0.0.1:9102", fmt.Sprintf("127.0.0.1:%d", d.ports["GRAY"]),
	)
	out, output := runBlocks(t, blocks, replacer, 120*time.Second, "GRAYMESH_ADMIN="+d.admin)

	checkBlocks(t, output, []blockCheck{
		{block: `curl -s -H 'x-gray-env: gray'`, // the README's taste
			want:  []string{`"x-gray-reason":"whitelist"`, `"x-gray-reason":"no-identity"`, "reason:      blacklisted"},
			count: map[string]int{`"env":"gray"`: 1, `"env":"stable"`: 1}},
		{block: `curl -si -H "Authorization: Bearer $alice"`, // whitelisted → gray, with a membership cookie
			want:    []string{`"env":"gray"`, `"x-gray-reason":"whitelist"`, "set-cookie: gm_member=m1:shop-v2:gray:"},
			notWant: []string{`"env":"stable"`}},
		{block: `Bearer $mallory" http`, // blacklisted (and whitelisted) → stable
			want:    []string{`"env":"stable"`, `"x-gray-reason":"blacklisted"`},
			notWant: []string{`"env":"gray"`}},
		{block: `-H "x-gray-env: gray"`, // anonymous, forged header, tampered token → stable
			count:   map[string]int{`"x-gray-reason":"no-identity"`: 2, `"x-gray-reason":"invalid-token"`: 1, `"env":"stable"`: 3},
			notWant: []string{`"env":"gray"`}},
		{block: `gm_device=$d`,
			want:  []string{`"x-gray-reason":"header"`},
			count: map[string]int{`"env":"gray"`: -1}},
		{block: `--claim tier=beta`,
			want: []string{`"x-gray-reason":"claim"`}},
		{block: `bin/graymesh loadtest --release shop-v2`, // shadow load: all gray, marked; the baseline stable
			want: []string{"envs: shadow gray ", "; baseline stable ", "first shadow failure: none",
				`graymesh_stress_requests_total{env="gray",hop="edge",reason="stress",release="shop-v2"}`},
			notWant: []string{"ABORTED"}},
		{block: `explain --config examples/demo.yaml --subject u7`,
			want: []string{"served by:", "reason:      blacklisted", `"identity": "device cookie (anonymous)"`}},
		{block: `# Where do we stand?`,
			want: []string{`"name": "shop-v2"`, `"config_version": "1"`}},
		{block: `cfg=.tools/shop/config.yaml`, // ramp 30 → 50
			want: []string{"percent raised 30 → 50", "no subject leaves gray", "in force: 2", "subject:     u7", "(config in force) (version 2)"}},
		{block: `s/percent: 50 /percent: 10 /`, // the refusal, with its reason, then the rollback
			want: []string{"percent lowered 50 → 10", `"result": "refused"`, `"error": "change would move gray subjects back to stable`, "in force: 3"}},
		{block: `release freeze shop-v2`,
			want: []string{`"state": "frozen"`, `"state": "killed"`, `"percent": 60`}},
		{block: `fault?error_rate=0.1`, // a bad gray version caught by the analysis
			want: []string{"verdict: FAIL — shop: errors: gray", "action:  freeze", `"state": "frozen"`, `"error_rate":0`}},
	})

	// reset drops the override: its answer, the last object, has none.
	ops := output(`release freeze shop-v2`)
	if last := ops[strings.LastIndex(ops, "{"):]; !strings.Contains(last, `"name": "shop-v2"`) || strings.Contains(last, "override") {
		t.Errorf("release reset answered %s", last)
	}

	// The percentage loop agrees with explain, subject by subject.
	lines := regexp.MustCompile(`(?m)^(u\d+) "env":"([a-z]+)"$`).FindAllStringSubmatch(output(`--claim tier=beta`), -1)
	if len(lines) != 10 {
		t.Fatalf("the u1…u10 loop printed %d lines", len(lines))
	}
	for _, l := range lines {
		ex, err := (&mesh{configPath: filepath.Join(repoRoot, "examples", "demo.yaml")}).explain("--subject", l[1])
		must(t, err)
		if ex["served"] != l[2] {
			t.Errorf("%s served by %s through Envoy, explain says %v", l[1], l[2], ex["served"])
		}
	}

	// The operating section edited the demo's copy, never the tracked file.
	now, err := os.ReadFile(filepath.Join(repoRoot, "examples", "demo.yaml"))
	must(t, err)
	if string(now) != string(tracked) {
		t.Fatal("the docs' commands changed examples/demo.yaml")
	}
	if t.Failed() {
		t.Logf("---- doc commands output ----\n%s", out)
	}
}
