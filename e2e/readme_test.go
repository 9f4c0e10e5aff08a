package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// readmeMarker precedes each README.md shell block that
// TestReadmeCommands runs against a demo.
const readmeMarker = "<!-- readme-test:"

// readmeBlocks returns the marked ```sh blocks of README.md, in order.
func readmeBlocks(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "README.md"))
	must(t, err)
	defer f.Close()
	var (
		blocks []string
		cur    []string
		state  int // 0 outside, 1 after a marker, 2 inside a marked block
	)
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		switch {
		case state == 0 && strings.HasPrefix(text, readmeMarker):
			state = 1
		case state == 1:
			if text != "```sh" {
				t.Fatalf("README.md:%d: a %s marker must be followed by a ```sh block, not %q", line, readmeMarker, text)
			}
			state = 2
		case state == 2 && text == "```":
			blocks = append(blocks, strings.Join(cur, "\n"))
			cur, state = nil, 0
		case state == 2:
			cur = append(cur, text)
		}
	}
	must(t, sc.Err())
	if state != 0 {
		t.Fatal("README.md: a marked block is not closed")
	}
	return blocks
}

// TestReadmeCommands runs the marked shell blocks of README.md's tour and
// operating sections, in order and in one shell, against the demo script
// started on free ports (the README's addresses and .tools/shop/ folder are
// replaced by the test's), and checks the outputs the README promises.
//
//nolint:funlen // one shell session, one story: the README blocks in order
func TestReadmeCommands(t *testing.T) {
	blocks := readmeBlocks(t)
	if len(blocks) < 10 {
		t.Fatalf("README.md has %d marked blocks; the tour and the operating section should be marked", len(blocks))
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
	var script strings.Builder
	// No -e: a failing command shows in its block's output, and the checks
	// below name the block.
	script.WriteString("set -u\n")
	for i, b := range blocks {
		fmt.Fprintf(&script, "printf '\\n@@block %d@@\\n'\n%s\n", i, replacer.Replace(b))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "GRAYMESH_ADMIN="+d.admin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README commands: %v\n%s", err, out)
	}
	outputs := map[int]string{}
	for _, part := range strings.Split(string(out), "\n@@block ")[1:] {
		var i int
		if _, err := fmt.Sscanf(part, "%d@@", &i); err != nil {
			t.Fatalf("output part %q: %v", part, err)
		}
		outputs[i] = part
	}
	// output returns the output of the one block containing id.
	output := func(id string) string {
		t.Helper()
		found := -1
		for i, b := range blocks {
			if strings.Contains(b, id) {
				if found >= 0 {
					t.Fatalf("README blocks %d and %d both contain %q", found, i, id)
				}
				found = i
			}
		}
		if found < 0 {
			t.Fatalf("no marked README block contains %q: the README and this test drifted apart", id)
		}
		return outputs[found]
	}

	for _, c := range []struct {
		block   string
		want    []string
		count   map[string]int
		notWant []string
	}{
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
	} {
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
			if n >= 0 && strings.Count(got, w) != n {
				t.Errorf("block with %q: %q %d times, want %d:\n%s", c.block, w, strings.Count(got, w), n, got)
			}
		}
	}

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
		t.Fatal("the README's commands changed examples/demo.yaml")
	}
	if t.Failed() {
		t.Logf("---- README commands output ----\n%s", out)
	}
}
