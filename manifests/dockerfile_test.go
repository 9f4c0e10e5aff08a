package manifests

import (
	"bufio"
	"bytes"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dockerfile is the parsed ../Dockerfile: instructions with continuation
// lines joined, grouped by stage.
type dockerfile struct {
	stages []stage
}

type stage struct {
	from  string // image reference
	name  string // AS name
	instr [][2]string
}

func parseDockerfile(data []byte) dockerfile {
	var df dockerfile
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		op, args, _ := strings.Cut(line, " ")
		op, args = strings.ToUpper(op), strings.TrimSpace(args)
		if op == "FROM" {
			f := strings.Fields(args)
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			df.stages = append(df.stages, st)
			return
		}
		if len(df.stages) > 0 {
			st := &df.stages[len(df.stages)-1]
			st.instr = append(st.instr, [2]string{op, args})
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "#") {
			continue
		}
		if s, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	return df
}

func (s stage) all(op string) []string {
	var out []string
	for _, in := range s.instr {
		if in[0] == op {
			out = append(out, in[1])
		}
	}
	return out
}

var (
	ldflagsRE  = regexp.MustCompile(`-ldflags[= ](?:"([^"]*)"|'([^']*)')`)
	makeVarRE  = regexp.MustCompile(`(?m)^LDFLAGS\s*:?=\s*(.*)$`)
	goModGoRE  = regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`)
	golangTags = regexp.MustCompile(`^golang:(\d+)\.(\d+)`)
)

// normVars writes $(X) and ${X} alike.
func normVars(s string) string {
	return regexp.MustCompile(`\$\{(\w+)\}`).ReplaceAllString(strings.TrimSpace(s), "$$($1)")
}

// TestDockerfile lints ../Dockerfile against the Makefile, go.mod and the
// DaemonSet: the same static build, pinned base images, the non-root user
// the manifests run as, the ports they name.
func TestDockerfile(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	df := parseDockerfile(read("../Dockerfile"))
	makefile := string(read("../Makefile"))
	gomod := string(read("../go.mod"))

	if len(df.stages) < 2 {
		t.Fatalf("%d stages; want a build stage and a runtime stage", len(df.stages))
	}
	for _, st := range df.stages {
		if err := imageError(st.from); err != nil {
			t.Error(err)
		}
	}

	checkBuildStage(t, df.stages[0], makefile, gomod)
	checkRuntimeStage(t, df.stages[len(df.stages)-1], df.stages[0])

	ignore := strings.Fields(string(read("../.dockerignore")))
	for _, want := range []string{".git", ".tools", "bin"} {
		if !slices.Contains(ignore, want) {
			t.Errorf(".dockerignore lacks %s", want)
		}
	}
}

// checkBuildStage: Go at least go.mod's version, and the Makefile's build
// command (CGO_ENABLED=0, the same -ldflags with -X main.version).
func checkBuildStage(t *testing.T, build stage, makefile, gomod string) {
	t.Helper()
	gm := goModGoRE.FindStringSubmatch(gomod)
	bm := golangTags.FindStringSubmatch(build.from)
	if gm == nil || bm == nil {
		t.Fatalf("build stage %s: want golang:<major>.<minor>…", build.from)
	}
	if atoi(bm[1])*1000+atoi(bm[2]) < atoi(gm[1])*1000+atoi(gm[2]) {
		t.Errorf("build stage %s is older than go.mod's go %s.%s", build.from, gm[1], gm[2])
	}
	var goBuild string
	for _, r := range build.all("RUN") {
		if strings.Contains(r, "go build") && strings.Contains(r, "./cmd/graymesh") {
			goBuild = r
		}
	}
	if goBuild == "" {
		t.Fatal("no RUN go build … ./cmd/graymesh")
	}
	mv := makeVarRE.FindStringSubmatch(makefile)
	if mv == nil {
		t.Fatal("Makefile has no LDFLAGS")
	}
	// The build target's line (-o bin/); make bench-ir builds another,
	// unstripped copy for callgrind.
	var makeBuild string
	for _, l := range strings.Split(makefile, "\n") {
		if strings.Contains(l, "go build") && strings.Contains(l, "-o bin/ ./cmd/graymesh") {
			makeBuild = l
		}
	}
	for name, cmd := range map[string]string{"Dockerfile": goBuild, "Makefile": makeBuild} {
		if !strings.Contains(cmd, "CGO_ENABLED=0") {
			t.Errorf("%s: go build without CGO_ENABLED=0 (static binary for distroless/static)", name)
		}
	}
	ld := ldflagsRE.FindStringSubmatch(goBuild)
	if ld == nil {
		t.Fatal("Dockerfile go build has no -ldflags")
	}
	dockerLD := normVars(ld[1] + ld[2])
	makeLD := normVars(mv[1])
	if !strings.Contains(makeBuild, "$(LDFLAGS)") {
		t.Error("Makefile build does not use $(LDFLAGS)")
	}
	if dockerLD != makeLD {
		t.Errorf("ldflags differ:\n Dockerfile %q\n Makefile   %q", dockerLD, makeLD)
	}
	if !strings.Contains(dockerLD, "-X main.version=$(VERSION)") {
		t.Errorf("ldflags %q do not set main.version", dockerLD)
	}
	if !slices.ContainsFunc(build.all("ARG"), func(a string) bool { return strings.HasPrefix(a, "VERSION") }) {
		t.Error("build stage has no ARG VERSION (make image passes --build-arg VERSION)")
	}
	if !strings.Contains(makefile, "--build-arg VERSION=") {
		t.Error("make image does not pass the version")
	}
}

// checkRuntimeStage: distroless, non-root, the binary (copied from the
// build stage) as entrypoint, the ports the DaemonSet names.
func checkRuntimeStage(t *testing.T, final, build stage) {
	t.Helper()
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") {
		t.Errorf("runtime stage %s; want distroless static", final.from)
	}
	users := final.all("USER")
	if len(users) == 0 || users[len(users)-1] != "65532:65532" {
		t.Errorf("runtime USER %v; want 65532:65532", users)
	}
	copied := false
	for _, c := range final.all("COPY") {
		copied = copied || strings.HasPrefix(c, "--from="+build.name+" ")
	}
	if build.name == "" || !copied {
		t.Error("runtime stage does not copy the binary from the build stage")
	}
	ep := final.all("ENTRYPOINT")
	if len(ep) != 1 || !strings.HasSuffix(strings.Trim(ep[0], `[]"`), "/graymesh") {
		t.Errorf("ENTRYPOINT %v; want the graymesh binary (the DaemonSet passes only args)", ep)
	}
	var exposed []int32
	for _, e := range final.all("EXPOSE") {
		for _, p := range strings.Fields(e) {
			exposed = append(exposed, int32(atoi(strings.TrimSuffix(p, "/tcp"))))
		}
	}
	ds := daemonSet(t, buildOf(t, "base"))
	for _, p := range ds.Spec.Template.Spec.Containers[0].Ports {
		if !slices.Contains(exposed, p.ContainerPort) {
			t.Errorf("DaemonSet port %s %d is not EXPOSEd", p.Name, p.ContainerPort)
		}
	}
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

func TestParseDockerfile(t *testing.T) {
	df := parseDockerfile([]byte("# c\nFROM a:1 AS b\nRUN x \\\n  y\nFROM c@sha256:00\nUSER 1:1\n"))
	if len(df.stages) != 2 || df.stages[0].name != "b" || df.stages[1].from != "c@sha256:00" {
		t.Fatalf("%+v", df)
	}
	if got := df.stages[0].all("RUN"); len(got) != 1 || strings.Join(strings.Fields(got[0]), " ") != "x y" {
		t.Fatalf("RUN %q", got)
	}
	if got := normVars(`-X main.version=${VERSION}`); got != "-X main.version=$(VERSION)" {
		t.Fatal(got)
	}
}
