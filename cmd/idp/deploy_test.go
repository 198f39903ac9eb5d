package main

// The deployment files (Dockerfile, .dockerignore, docker-compose.yml,
// deploy/kubernetes) and docs/operations.md, checked against the binary
// they deploy. No Docker engine or Kubernetes cluster is needed: the files
// are parsed (compose-go, the Kubernetes API types) and the parts that run
// without an engine run here (the image's go build, the probe paths).

import (
	"bufio"
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

// repoRoot is the module's root directory (tests run in cmd/idp).
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found: %v", err)
	}
	return root
}

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// knownEnv reports whether name is a variable the binary reads.
func knownEnv(name string) bool { return slices.Contains(envNames(), name) }

// configFrom parses the configuration that vars (an environment) give the
// binary, as `idp serve` would.
func configFrom(vars map[string]string) (config, error) {
	fs := flag.NewFlagSet("idp serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return parseConfig(fs, nil, env(vars))
}

// ---------------------------------------------------------------------------
// Dockerfile
//
// A small parser of the Dockerfile syntax this project uses, rather than
// BuildKit's: importing github.com/moby/buildkit would raise, for the whole
// module and so for the production binary, the versions of OpenTelemetry,
// grpc-gateway, genproto and others that the Google Cloud clients use. The
// parser refuses what it does not understand (heredocs, variables in FROM,
// another escape character, shell operators in the build command) instead of
// guessing, so a Dockerfile change it cannot follow fails the test.

type dockerInstruction struct {
	line  int
	cmd   string   // upper case
	flags []string // leading --name=value options
	args  string   // the rest, as written
	exec  []string // the JSON (exec) form, when args is one
}

type dockerStage struct {
	base, name string
	instrs     []dockerInstruction
}

func (s dockerStage) all(cmd string) []dockerInstruction {
	var out []dockerInstruction
	for _, in := range s.instrs {
		if in.cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s dockerStage) last(cmd string) (dockerInstruction, bool) {
	all := s.all(cmd)
	if len(all) == 0 {
		return dockerInstruction{}, false
	}
	return all[len(all)-1], true
}

// env is the stage's ENV, in order.
func (s dockerStage) env() (map[string]string, error) {
	env := map[string]string{}
	for _, in := range s.all("ENV") {
		words, err := shellWords(in.args)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", in.line, err)
		}
		for _, w := range words {
			k, v, ok := strings.Cut(w, "=")
			if !ok {
				return nil, fmt.Errorf("line %d: ENV %q: use the KEY=value form", in.line, w)
			}
			env[k] = v
		}
	}
	return env, nil
}

var dockerFlag = regexp.MustCompile(`^--[a-z-]+(=\S*)?$`)

func parseDockerfile(src string) ([]dockerStage, error) {
	var (
		stages  []dockerStage
		pending strings.Builder
		start   int
	)
	lines := strings.Split(src, "\n")
	for i, raw := range lines {
		line := strings.TrimRight(raw, " \t\r")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			if pending.Len() == 0 && i < 5 && strings.HasPrefix(strings.ToLower(strings.ReplaceAll(trimmed, " ", "")), "#escape=") {
				return nil, fmt.Errorf("line %d: the escape directive is not supported", i+1)
			}
			continue // comments, also inside a continuation
		}
		if trimmed == "" && pending.Len() == 0 {
			continue
		}
		if pending.Len() == 0 {
			start = i + 1
		}
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			pending.WriteString(cont + " ")
			continue
		}
		pending.WriteString(line)
		text := strings.TrimSpace(pending.String())
		pending.Reset()

		cmd, rest, _ := strings.Cut(text, " ")
		in := dockerInstruction{line: start, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(rest)}
		for strings.HasPrefix(in.args, "--") {
			f, r, _ := strings.Cut(in.args, " ")
			if !dockerFlag.MatchString(f) {
				return nil, fmt.Errorf("line %d: cannot read the option %q", start, f)
			}
			in.flags = append(in.flags, f)
			in.args = strings.TrimSpace(r)
		}
		if in.cmd == "HEALTHCHECK" {
			kind, r, _ := strings.Cut(in.args, " ")
			if strings.ToUpper(kind) != "CMD" {
				return nil, fmt.Errorf("line %d: HEALTHCHECK %s: want HEALTHCHECK [options] CMD …", start, kind)
			}
			in.args = strings.TrimSpace(r)
		}
		if strings.Contains(in.args, "<<") {
			return nil, fmt.Errorf("line %d: heredocs are not supported", start)
		}
		if strings.HasPrefix(in.args, "[") {
			if err := json.Unmarshal([]byte(in.args), &in.exec); err != nil {
				return nil, fmt.Errorf("line %d: %s: malformed exec form: %v", start, in.cmd, err)
			}
		}
		switch in.cmd {
		case "FROM":
			f := strings.Fields(in.args)
			if strings.Contains(in.args, "$") || !(len(f) == 1 || len(f) == 3 && strings.EqualFold(f[1], "AS")) {
				return nil, fmt.Errorf("line %d: FROM %s: want FROM image [AS name], without variables", start, in.args)
			}
			st := dockerStage{base: f[0]}
			if len(f) == 3 {
				st.name = f[2]
			}
			stages = append(stages, st)
		case "ARG", "RUN", "COPY", "ADD", "ENV", "WORKDIR", "USER", "EXPOSE", "HEALTHCHECK", "ENTRYPOINT", "CMD", "LABEL", "VOLUME", "STOPSIGNAL", "SHELL":
			if len(stages) == 0 {
				if in.cmd != "ARG" {
					return nil, fmt.Errorf("line %d: %s before FROM", start, in.cmd)
				}
				continue
			}
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
		default:
			return nil, fmt.Errorf("line %d: unknown instruction %q", start, in.cmd)
		}
	}
	if pending.Len() != 0 {
		return nil, errors.New("the file ends in a line continuation")
	}
	return stages, nil
}

// shellWords splits a simple shell command into words: quotes and
// backslashes as sh has them; anything that would make it more than one
// simple command (operators, expansions, redirections) is refused.
func shellWords(s string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				switch {
				case s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0:
					i++
				case s[i] == '$' || s[i] == '`':
					return nil, errors.New("expansions are not supported")
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inWord = true
		case c == '\\':
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
			inWord = true
		case strings.IndexByte("$`;&|<>()*?[]{}~#", c) >= 0:
			return nil, fmt.Errorf("%q: only a simple command is supported", c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// goBuild is the `go build` of the Dockerfile's build stage.
type goBuild struct {
	env    []string // CGO_ENABLED=0 and the like: the stage's ENV, then the command's own assignments
	args   []string // after "go build", with the -o target as written
	output string   // the -o target
	stage  string
}

func dockerGoBuild(stages []dockerStage) (goBuild, error) {
	var found []goBuild
	for _, st := range stages {
		stageEnv, err := st.env()
		if err != nil {
			return goBuild{}, err
		}
		for _, run := range st.all("RUN") {
			if !strings.Contains(run.args, "go build") {
				continue
			}
			if run.exec != nil {
				return goBuild{}, fmt.Errorf("line %d: write the go build RUN in shell form", run.line)
			}
			words, err := shellWords(run.args)
			if err != nil {
				return goBuild{}, fmt.Errorf("line %d: %w", run.line, err)
			}
			gb := goBuild{stage: st.name}
			for k, v := range stageEnv {
				gb.env = append(gb.env, k+"="+v)
			}
			slices.Sort(gb.env)
			for len(words) > 0 && strings.Contains(words[0], "=") {
				gb.env = append(gb.env, words[0])
				words = words[1:]
			}
			if len(words) < 2 || words[0] != "go" || words[1] != "build" {
				return goBuild{}, fmt.Errorf("line %d: want [VAR=value…] go build …, got %q", run.line, words)
			}
			gb.args = words[2:]
			for i, a := range gb.args {
				if a == "-o" && i+1 < len(gb.args) {
					gb.output = gb.args[i+1]
				}
			}
			found = append(found, gb)
		}
	}
	if len(found) != 1 {
		return goBuild{}, fmt.Errorf("%d RUN lines with go build, want exactly 1", len(found))
	}
	return found[0], nil
}

func (g goBuild) getenv(name string) (string, bool) {
	for i := len(g.env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(g.env[i], "="); k == name {
			return v, true
		}
	}
	return "", false
}

// TestDockerfileParser checks the small parser itself on what it must read
// and what it must refuse.
func TestDockerfileParser(t *testing.T) {
	words, err := shellWords(`CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "/out/my idp" ./cmd/idp`)
	if want := []string{"CGO_ENABLED=0", "go", "build", "-trimpath", "-ldflags=-s -w", "-o", "/out/my idp", "./cmd/idp"}; err != nil || !slices.Equal(words, want) {
		t.Errorf("shellWords: %q %v", words, err)
	}
	for _, bad := range []string{"go build && rm -rf /", "go build $FLAGS", "go build `x`", "go build > log", "go build 'open"} {
		if _, err := shellWords(bad); err == nil {
			t.Errorf("shellWords accepted %q", bad)
		}
	}
	stages, err := parseDockerfile("# syntax=docker/dockerfile:1\nFROM golang:1.26 AS build\nENV A=1 \\\n  # a comment inside\n  B=\"two words\"\nRUN --mount=type=cache,target=/x \\\n    CGO_ENABLED=0 go build -o /out/idp ./cmd/idp\nFROM scratch\nCOPY --from=build /out/idp /idp\nUSER 65532:65532\nHEALTHCHECK --interval=5s CMD [\"/idp\", \"healthcheck\"]\nENTRYPOINT [\"/idp\"]\n")
	if err != nil || len(stages) != 2 || stages[0].name != "build" || stages[1].base != "scratch" {
		t.Fatalf("parseDockerfile: %+v %v", stages, err)
	}
	if env, err := stages[0].env(); err != nil || env["A"] != "1" || env["B"] != "two words" {
		t.Errorf("ENV: %v %v", env, err)
	}
	gb, err := dockerGoBuild(stages)
	if err != nil || gb.output != "/out/idp" || gb.stage != "build" || !slices.Contains(gb.env, "CGO_ENABLED=0") {
		t.Errorf("go build: %+v %v", gb, err)
	}
	if hc, _ := stages[1].last("HEALTHCHECK"); !slices.Equal(hc.exec, []string{"/idp", "healthcheck"}) || !slices.Equal(hc.flags, []string{"--interval=5s"}) {
		t.Errorf("HEALTHCHECK: %+v", hc)
	}
	for _, bad := range []string{
		"FROM golang:${GO}\n",
		"FROM a\nRUN <<EOF\necho\nEOF\n",
		"# escape=`\nFROM a\n",
		"FROM a\nFROB x\n",
		"RUN x\n",
		"FROM a\nENTRYPOINT [\"/idp\"\n",
		"FROM a\nRUN x \\",
	} {
		if _, err := parseDockerfile(bad); err == nil {
			t.Errorf("parseDockerfile accepted %q", bad)
		}
	}
}

func loadDockerfile(t *testing.T) []dockerStage {
	t.Helper()
	stages, err := parseDockerfile(readRepoFile(t, "Dockerfile"))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	return stages
}

func TestDockerfile(t *testing.T) {
	stages := loadDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("%d stages: the image must be multi-stage (build, then a minimal runtime)", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// The build stage: Go of the go.mod's release.
	goRelease := strings.Join(strings.SplitN(strings.TrimPrefix(runtime.Version(), "go"), ".", 3)[:2], ".")
	if !strings.HasPrefix(build.base, "golang:"+goRelease) {
		t.Errorf("build stage FROM %s, want golang:%s (the toolchain the tests run with)", build.base, goRelease)
	}
	gb, err := dockerGoBuild(stages)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := gb.getenv("CGO_ENABLED"); v != "0" {
		t.Errorf("go build runs with CGO_ENABLED=%q, want 0 (a static binary for a distroless/scratch image)", v)
	}
	if !slices.Contains(gb.args, "-trimpath") || gb.args[len(gb.args)-1] != "./cmd/idp" || gb.output == "" {
		t.Errorf("go build %q: want -trimpath, -o and ./cmd/idp", gb.args)
	}

	// The runtime stage: minimal, non-root, the binary as entry point.
	if !strings.HasPrefix(final.base, "gcr.io/distroless/static") && final.base != "scratch" {
		t.Errorf("runtime stage FROM %s, want distroless static or scratch", final.base)
	}
	user, ok := final.last("USER")
	if !ok {
		t.Fatal("the runtime stage sets no USER: the image would run as root")
	}
	uid, gid, _ := strings.Cut(user.args, ":")
	for _, id := range []string{uid, gid} {
		if n, err := strconv.Atoi(id); id != "" && (err != nil || n == 0) {
			t.Errorf("USER %s: want numeric, non-zero ids (Kubernetes' runAsNonRoot can only verify numbers)", user.args)
		}
	}
	if uid == "" {
		t.Errorf("USER %q has no user id", user.args)
	}
	entry, _ := final.last("ENTRYPOINT")
	if len(entry.exec) != 1 {
		t.Fatalf("ENTRYPOINT %s: want the binary alone, in exec form", entry.args)
	}
	binary := entry.exec[0]
	copied := false
	for _, c := range final.all("COPY") {
		f := strings.Fields(c.args)
		if slices.Contains(c.flags, "--from="+gb.stage) && len(f) == 2 && f[0] == gb.output && f[1] == binary {
			copied = true
		}
	}
	if !copied {
		t.Errorf("the runtime stage does not COPY --from=%s %s %s: the ENTRYPOINT is not the binary built", gb.stage, gb.output, binary)
	}
	if cmd, _ := final.last("CMD"); !slices.Equal(cmd.exec, []string{"serve"}) {
		t.Errorf("CMD %s, want [\"serve\"]", cmd.args)
	}
	hc, ok := final.last("HEALTHCHECK")
	if !ok || !slices.Equal(hc.exec, []string{binary, "healthcheck"}) {
		t.Errorf("HEALTHCHECK CMD %s, want [%q, \"healthcheck\"] (the image has no curl)", hc.args, binary)
	}
	// The image is reached from outside the container: it sets both
	// addresses (the embedded default's is loopback), and exposes them.
	finalEnv, err := final.env()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := configFrom(finalEnv)
	if err != nil {
		t.Fatalf("idp refuses the image's environment: %v", err)
	}
	expose, _ := final.last("EXPOSE")
	exposed := strings.Fields(expose.args)
	for _, a := range []struct{ env, addr string }{{"IDP_HTTP_ADDR", cfg.HTTPAddr}, {"IDP_OPS_ADDR", cfg.OpsAddr}} {
		host, port, _ := net.SplitHostPort(a.addr)
		if _, set := finalEnv[a.env]; !set || host != "" {
			t.Errorf("the image's %s is %q, want :port (every interface of the container)", a.env, a.addr)
		}
		if !slices.Contains(exposed, port) && !slices.Contains(exposed, port+"/tcp") {
			t.Errorf("EXPOSE %s does not expose the port of %s, %s", expose.args, a.env, port)
		}
	}
	for _, st := range stages {
		env, err := st.env()
		if err != nil {
			t.Fatal(err)
		}
		for k := range env {
			if strings.HasPrefix(k, "IDP_") && !knownEnv(k) {
				t.Errorf("the Dockerfile sets %s, which idp does not read", k)
			}
		}
	}
}

// TestImageBuildStageBuilds runs the build stage's go build, with its exact
// flags and environment (read from the Dockerfile), into a temporary
// directory, and checks that the result is the static, stripped binary the
// runtime image needs.
func TestImageBuildStageBuilds(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	gb, err := dockerGoBuild(loadDockerfile(t))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "idp")
	args := slices.Clone(gb.args)
	args[slices.Index(args, gb.output)] = out
	cmd := exec.Command(goBin, append([]string{"build"}, args...)...)
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), gb.env...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", strings.Join(args, " "), err, b)
	}

	f, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary needs a dynamic loader: it would not start on distroless/static")
		}
	}
	if f.Section(".symtab") != nil {
		t.Error("the binary keeps its symbol table: -ldflags=-s did not apply")
	}
	usage, err := exec.Command(out, "help").Output()
	if err != nil || !strings.Contains(string(usage), "healthcheck") {
		t.Errorf("idp help: %v %s", err, usage)
	}
}

// TestDockerignore checks that the build context keeps every file the build
// reads: the Go files and embedded files of every package of the module that
// ./cmd/idp imports, and go.mod and go.sum.
func TestDockerignore(t *testing.T) {
	if testing.Short() {
		t.Skip("lists the build's packages")
	}
	root := repoRoot(t)
	var patterns []string
	for line := range strings.Lines(readRepoFile(t, ".dockerignore")) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.ContainsAny(line, "!") || strings.Contains(line, "**") {
			t.Fatalf(".dockerignore: %q: this test's matcher handles plain patterns only", line)
		}
		patterns = append(patterns, filepath.Clean(line))
	}
	excluded := func(rel string) string {
		for dir := rel; dir != "."; dir = filepath.Dir(dir) {
			for _, p := range patterns {
				if ok, _ := filepath.Match(p, dir); ok {
					return p
				}
			}
		}
		return ""
	}
	cmd := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}{{end}}`,
		"./cmd/idp")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	files := []string{"go.mod", "go.sum"}
	for line := range strings.Lines(string(out)) {
		if line = strings.TrimSpace(line); line != "" {
			rel, err := filepath.Rel(root, line)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, rel)
		}
	}
	if len(files) < 50 || !slices.Contains(files, filepath.Join("api", "openapi.yaml")) {
		t.Fatalf("go list found only %d files: %v", len(files), files)
	}
	for _, f := range files {
		if p := excluded(f); p != "" {
			t.Errorf(".dockerignore pattern %q leaves %s, which the build needs, out of the build context", p, f)
		}
	}
}

// ---------------------------------------------------------------------------
// docker-compose.yml

func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	root := repoRoot(t)
	p, err := loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(root, "docker-compose.yml")}},
		Environment: env,
	}, func(o *loader.Options) {
		o.SetProjectName("idp", true)
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

func composeEnv(svc types.ServiceConfig) map[string]string {
	out := map[string]string{}
	for k, v := range svc.Environment {
		if v != nil {
			out[k] = *v
		}
	}
	return out
}

func TestCompose(t *testing.T) {
	p := loadCompose(t, map[string]string{})
	var names []string
	for name := range p.Services {
		names = append(names, name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"gcs", "idp", "mysql"}) {
		t.Fatalf("services %v, want gcs, idp and mysql", names)
	}
	mysql, gcs, idpSvc := p.Services["mysql"], p.Services["gcs"], p.Services["idp"]

	// Every IDP_ variable is one the binary reads, and together they make a
	// production configuration it accepts.
	for name, svc := range p.Services {
		for k := range svc.Environment {
			if strings.HasPrefix(k, "IDP_") && !knownEnv(k) {
				t.Errorf("service %s sets %s, which idp does not read", name, k)
			}
		}
	}
	env := composeEnv(idpSvc)
	cfg, err := configFrom(env)
	if err != nil {
		t.Fatalf("idp refuses the compose configuration: %v", err)
	}
	if cfg.embedded() || !strings.HasPrefix(cfg.DatabaseURL, "mysql://") || !strings.HasPrefix(cfg.PicturesURL, "gs://") {
		t.Errorf("the compose idp is not in production mode on MySQL and GCS: %+v", cfg)
	}
	if env["IDP_SENDGRID_API_KEY"] != "" {
		t.Errorf("without IDP_SENDGRID_API_KEY in the environment, mail must go to mail.log")
	}
	withKey := composeEnv(loadCompose(t, map[string]string{"IDP_SENDGRID_API_KEY": "SG.test", "IDP_MAIL_FROM": "Ops <ops@example.com>"}).Services["idp"])
	if withKey["IDP_SENDGRID_API_KEY"] != "SG.test" || withKey["IDP_MAIL_FROM"] != "Ops <ops@example.com>" {
		t.Errorf("IDP_SENDGRID_API_KEY and IDP_MAIL_FROM are not passed through: %v", withKey)
	}

	// MySQL: health-checked, on a named volume, with the database and user
	// that IDP_DATABASE_URL names.
	if mysql.Image != "mysql:8.4" {
		t.Errorf("mysql image %s", mysql.Image)
	}
	if mysql.HealthCheck == nil || !strings.Contains(strings.Join(mysql.HealthCheck.Test, " "), "mysqladmin ping") {
		t.Errorf("mysql has no mysqladmin ping health check: %+v", mysql.HealthCheck)
	}
	if !hasNamedVolume(p, mysql, "/var/lib/mysql") {
		t.Errorf("mysql keeps its data in no named volume: %+v", mysql.Volumes)
	}
	db, err := url.Parse(env["IDP_DATABASE_URL"])
	if err != nil {
		t.Fatal(err)
	}
	pw, _ := db.User.Password()
	mysqlEnv := composeEnv(mysql)
	if db.Hostname() != "mysql" || db.Port() != "3306" || db.Path != "/"+mysqlEnv["MYSQL_DATABASE"] ||
		db.User.Username() != mysqlEnv["MYSQL_USER"] || pw != mysqlEnv["MYSQL_PASSWORD"] {
		t.Errorf("IDP_DATABASE_URL %s does not match the mysql service's database and user", env["IDP_DATABASE_URL"])
	}

	// The GCS emulator: the version the tests use in-process, the bucket of
	// IDP_PICTURES_URL created at start from deploy/compose/gcs-data.
	if v := moduleVersion(t, "github.com/fsouza/fake-gcs-server"); v == "" || gcs.Image != "fsouza/fake-gcs-server:"+strings.TrimPrefix(v, "v") {
		t.Errorf("gcs image %s, want fsouza/fake-gcs-server at the go.mod version %s", gcs.Image, v)
	}
	bucket := strings.TrimPrefix(cfg.PicturesURL, "gs://")
	bucket, _, _ = strings.Cut(bucket, "/")
	initData := ""
	for _, v := range gcs.Volumes {
		if v.Target == "/data" && v.Type == types.VolumeTypeBind {
			initData = v.Source
		}
	}
	if fi, err := os.Stat(filepath.Join(initData, bucket)); initData == "" || err != nil || !fi.IsDir() {
		t.Errorf("the gcs service does not create the bucket %s at start (no %s/%s folder mounted at /data)", bucket, initData, bucket)
	}
	emu := env["STORAGE_EMULATOR_HOST"]
	cmd := strings.Join(gcs.Command, " ")
	if host, port, _ := net.SplitHostPort(emu); host != "gcs" || !strings.Contains(cmd, "-port "+port) || !strings.Contains(cmd, "-scheme http") {
		t.Errorf("STORAGE_EMULATOR_HOST %q does not name the gcs service's port (%s)", emu, cmd)
	}

	// idp: built from the root Dockerfile, after healthy MySQL, on
	// localhost:8080, with its data directory on a volume.
	if idpSvc.Build == nil {
		t.Fatal("the idp service is not built from the Dockerfile")
	}
	dockerfile := idpSvc.Build.Dockerfile
	if !filepath.IsAbs(dockerfile) {
		dockerfile = filepath.Join(idpSvc.Build.Context, dockerfile)
	}
	if filepath.Clean(idpSvc.Build.Context) != repoRoot(t) || dockerfile != filepath.Join(repoRoot(t), "Dockerfile") {
		t.Errorf("idp build: context %s, Dockerfile %s; want the repository root and its Dockerfile", idpSvc.Build.Context, dockerfile)
	}
	if d, ok := idpSvc.DependsOn["mysql"]; !ok || d.Condition != types.ServiceConditionHealthy {
		t.Errorf("idp depends on mysql with %+v, want condition service_healthy", d)
	}
	if d, ok := idpSvc.DependsOn["gcs"]; !ok || d.Condition != types.ServiceConditionStarted {
		t.Errorf("idp depends on gcs with %+v, want condition service_started", d)
	}
	_, port, _ := net.SplitHostPort(cfg.HTTPAddr)
	published := false
	for _, pc := range idpSvc.Ports {
		if pc.Published == "8080" && strconv.Itoa(int(pc.Target)) == port && (pc.HostIP == "" || pc.HostIP == "127.0.0.1") {
			published = true
		}
	}
	if !published {
		t.Errorf("idp is not published on localhost:8080 (target port %s): %+v", port, idpSvc.Ports)
	}
	// The operations listener: on every interface of the container, and
	// published on the host's loopback only.
	opsHost, opsPort, _ := net.SplitHostPort(cfg.OpsAddr)
	opsPublished := false
	for _, pc := range idpSvc.Ports {
		if strconv.Itoa(int(pc.Target)) == opsPort {
			opsPublished = pc.HostIP == "127.0.0.1"
			if !opsPublished {
				t.Errorf("the operations port is published on %q, want 127.0.0.1", pc.HostIP)
			}
		}
	}
	if opsHost != "" || !opsPublished {
		t.Errorf("IDP_OPS_ADDR %q is not :port published on 127.0.0.1: %+v", cfg.OpsAddr, idpSvc.Ports)
	}
	if iss, _ := url.Parse(cfg.Issuer); iss.Host != "localhost:8080" {
		t.Errorf("IDP_ISSUER %s is not where the service is published", cfg.Issuer)
	}
	if !hasNamedVolume(p, idpSvc, cfg.DataDir) {
		t.Errorf("IDP_DATA_DIR %s (mail.log) is on no named volume: %+v", cfg.DataDir, idpSvc.Volumes)
	}
}

func hasNamedVolume(p *types.Project, svc types.ServiceConfig, target string) bool {
	for _, v := range svc.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == target {
			if _, ok := p.Volumes[v.Source]; ok {
				return true
			}
		}
	}
	return false
}

// moduleVersion is the version of a module that go.mod requires.
func moduleVersion(t *testing.T, path string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(path) + `\s+(v\S+)`).FindStringSubmatch(readRepoFile(t, "go.mod"))
	if m == nil {
		return ""
	}
	return m[1]
}

// ---------------------------------------------------------------------------
// deploy/kubernetes

type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Labels     []struct {
		Pairs map[string]string `json:"pairs"`
	} `json:"labels"`
	Resources []string `json:"resources"`
	Images    []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// k8sManifests holds every object of deploy/kubernetes, decoded strictly
// into its API type: an unknown or misspelt field fails.
type k8sManifests struct {
	files          []string // every .yaml file
	kustomization  kustomization
	deployment     *appsv1.Deployment
	service        *corev1.Service
	configMap      *corev1.ConfigMap
	secret         *corev1.Secret
	serviceAccount *corev1.ServiceAccount
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	job            *batchv1.Job
}

func loadK8s(t *testing.T) k8sManifests {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "deploy", "kubernetes")
	var m k8sManifests
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Deployment": "apps/v1", "Service": "v1", "ConfigMap": "v1", "Secret": "v1", "ServiceAccount": "v1",
		"PodDisruptionBudget": "policy/v1", "HorizontalPodAutoscaler": "autoscaling/v2", "Job": "batch/v1",
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		m.files = append(m.files, e.Name())
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == "kustomization.yaml" {
			if err := yaml.UnmarshalStrict(b, &m.kustomization); err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
			continue
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			if strings.TrimSpace(regexp.MustCompile(`(?m)^\s*#.*$`).ReplaceAllString(doc, "")) == "" {
				continue
			}
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s #%d: %v", e.Name(), i, err)
			}
			if want[meta.Kind] != meta.APIVersion {
				t.Fatalf("%s: %s %s, want apiVersion %q", e.Name(), meta.APIVersion, meta.Kind, want[meta.Kind])
			}
			var target any
			switch meta.Kind {
			case "Deployment":
				m.deployment = new(appsv1.Deployment)
				target = m.deployment
			case "Service":
				m.service = new(corev1.Service)
				target = m.service
			case "ConfigMap":
				m.configMap = new(corev1.ConfigMap)
				target = m.configMap
			case "Secret":
				m.secret = new(corev1.Secret)
				target = m.secret
			case "ServiceAccount":
				m.serviceAccount = new(corev1.ServiceAccount)
				target = m.serviceAccount
			case "PodDisruptionBudget":
				m.pdb = new(policyv1.PodDisruptionBudget)
				target = m.pdb
			case "HorizontalPodAutoscaler":
				m.hpa = new(autoscalingv2.HorizontalPodAutoscaler)
				target = m.hpa
			case "Job":
				m.job = new(batchv1.Job)
				target = m.job
			}
			if err := yaml.UnmarshalStrict([]byte(doc), target); err != nil {
				t.Fatalf("%s: %v", e.Name(), err)
			}
		}
	}
	for kind, got := range map[string]bool{
		"Deployment": m.deployment != nil, "Service": m.service != nil, "ConfigMap": m.configMap != nil, "Secret": m.secret != nil,
		"PodDisruptionBudget": m.pdb != nil, "HorizontalPodAutoscaler": m.hpa != nil, "Job": m.job != nil, "ServiceAccount": m.serviceAccount != nil,
	} {
		if !got {
			t.Fatalf("deploy/kubernetes has no %s", kind)
		}
	}
	return m
}

func TestKubernetesManifests(t *testing.T) {
	m := loadK8s(t)

	// The kustomization applies every manifest but the example Secret,
	// which must never overwrite the real one.
	k := m.kustomization
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: %s %s", k.APIVersion, k.Kind)
	}
	for _, f := range m.files {
		listed := slices.Contains(k.Resources, f)
		switch f {
		case "kustomization.yaml":
		case "secret.example.yaml":
			if listed {
				t.Error("kustomization.yaml applies secret.example.yaml: its placeholders would overwrite the real Secret")
			}
		default:
			if !listed {
				t.Errorf("kustomization.yaml does not list %s", f)
			}
		}
	}
	for _, r := range k.Resources {
		if !slices.Contains(m.files, r) {
			t.Errorf("kustomization.yaml lists %s, which does not exist", r)
		}
	}

	// Configuration: every IDP_ variable is one the binary reads; the
	// Secret holds the secrets and the ConfigMap the rest; with real values
	// for the Secret's placeholders, the binary accepts the whole.
	secretKeys := []string{"IDP_DATABASE_URL", "IDP_KEY_ENCRYPTION_KEY", "IDP_REFRESH_TOKEN_SECRETS", "IDP_SENDGRID_API_KEY"}
	for _, key := range secretKeys {
		if _, ok := m.secret.StringData[key]; !ok {
			t.Errorf("secret.example.yaml lacks %s", key)
		}
		if _, ok := m.configMap.Data[key]; ok {
			t.Errorf("the ConfigMap holds the secret %s", key)
		}
	}
	vars := map[string]string{}
	for source, data := range map[string]map[string]string{"ConfigMap": m.configMap.Data, "Secret": m.secret.StringData} {
		for key, v := range data {
			if !knownEnv(key) {
				t.Errorf("the %s sets %s, which idp does not read", source, key)
			}
			vars[key] = v
		}
	}
	if _, err := configFrom(vars); err == nil {
		t.Error("idp accepts secret.example.yaml's placeholders: a pod started with them must stop")
	}
	real := map[string]string{
		"IDP_DATABASE_URL":          "mysql://idp:secret@mysql:3306/idp",
		"IDP_KEY_ENCRYPTION_KEY":    testKEK,
		"IDP_REFRESH_TOKEN_SECRETS": testRefreshSecret,
		"IDP_SENDGRID_API_KEY":      "SG.test",
	}
	for key, v := range real {
		vars[key] = v
	}
	cfg, err := configFrom(vars)
	if err != nil {
		t.Fatalf("idp refuses the ConfigMap's settings: %v", err)
	}
	if cfg.embedded() || !strings.HasPrefix(cfg.PicturesURL, "gs://") {
		t.Errorf("the manifests do not configure production mode with GCS: %+v", cfg)
	}

	// The pods: the server and the migration.
	d := m.deployment
	pod := d.Spec.Template.Spec
	job := m.job.Spec.Template.Spec
	if len(pod.Containers) != 1 || len(job.Containers) != 1 {
		t.Fatalf("want one container in the Deployment and in the Job")
	}
	server, migrate := pod.Containers[0], job.Containers[0]
	if !slices.Equal(server.Args, []string{"serve"}) || len(server.Command) != 0 {
		t.Errorf("server container runs %v %v, want the image's entry point with serve", server.Command, server.Args)
	}
	if !slices.Equal(migrate.Args, []string{"migrate"}) || len(migrate.Command) != 0 || migrate.Image != server.Image {
		t.Errorf("the Job runs %s %v %v, want the server's image with migrate", migrate.Image, migrate.Command, migrate.Args)
	}
	if slices.IndexFunc(k.Images, func(i struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	}) bool {
		return i.Name == server.Image
	}) < 0 {
		t.Errorf("kustomization.yaml does not set the image %s", server.Image)
	}
	for name, c := range map[string]corev1.Container{"server": server, "migrate": migrate} {
		var refs []string
		for _, ef := range c.EnvFrom {
			switch {
			case ef.ConfigMapRef != nil:
				refs = append(refs, "ConfigMap "+ef.ConfigMapRef.Name)
			case ef.SecretRef != nil:
				refs = append(refs, "Secret "+ef.SecretRef.Name)
			}
		}
		if !slices.Contains(refs, "ConfigMap "+m.configMap.Name) || !slices.Contains(refs, "Secret "+m.secret.Name) {
			t.Errorf("%s: envFrom %v, want the ConfigMap %s and the Secret %s", name, refs, m.configMap.Name, m.secret.Name)
		}
		for _, e := range c.Env {
			if strings.HasPrefix(e.Name, "IDP_") && !knownEnv(e.Name) {
				t.Errorf("%s: env %s, which idp does not read", name, e.Name)
			}
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: resources %+v: want CPU and memory requests and a memory limit", name, c.Resources)
		}
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, corev1.Capability("ALL")) {
			t.Errorf("%s: securityContext %+v: want no privilege escalation, a read-only root and every capability dropped", name, sc)
		}
	}
	for name, spec := range map[string]corev1.PodSpec{"Deployment": pod, "Job": job} {
		psc := spec.SecurityContext
		c := spec.Containers[0].SecurityContext
		nonRoot := psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot || c.RunAsNonRoot != nil && *c.RunAsNonRoot
		var uid int64
		if psc != nil && psc.RunAsUser != nil {
			uid = *psc.RunAsUser
		}
		if c.RunAsUser != nil {
			uid = *c.RunAsUser
		}
		if !nonRoot || uid == 0 {
			t.Errorf("%s: runAsNonRoot %v, runAsUser %d: want a non-root, non-zero user", name, nonRoot, uid)
		}
		if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("%s: want the RuntimeDefault seccomp profile", name)
		}
	}
	if user, ok := loadDockerfileUser(t); ok && user != *pod.SecurityContext.RunAsUser {
		t.Errorf("runAsUser %d is not the image's USER %d", *pod.SecurityContext.RunAsUser, user)
	}
	if m.job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyOnFailure && m.job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("Job restartPolicy %s", m.job.Spec.Template.Spec.RestartPolicy)
	}

	// Memory: the argon2id budget (IDP_HASH_CONCURRENCY × 64 MiB) plus
	// about 150 MiB fits in the limit, and GOMEMLIMIT sits below it.
	limit := server.Resources.Limits.Memory().Value()
	if server.Resources.Requests.Memory().Value() != limit {
		t.Errorf("memory request %s ≠ limit %s", server.Resources.Requests.Memory(), server.Resources.Limits.Memory())
	}
	if cfg.HashConcurrency <= 0 {
		t.Fatalf("IDP_HASH_CONCURRENCY must be set: one per CPU of the node would size the memory by the node, not the pod")
	}
	argon := int64(cfg.HashConcurrency) * 64 << 20
	if need := argon + 150<<20; limit < need {
		t.Errorf("memory limit %d MiB < %d × 64 MiB for argon2id + 150 MiB", limit>>20, cfg.HashConcurrency)
	}
	var gomemlimit string
	for _, e := range server.Env {
		if e.Name == "GOMEMLIMIT" {
			gomemlimit = e.Value
		}
	}
	if q, err := resource.ParseQuantity(strings.TrimSuffix(gomemlimit, "B")); err != nil || q.Value() >= limit || q.Value() < argon {
		t.Errorf("GOMEMLIMIT %q: want it between the argon2id budget and the memory limit", gomemlimit)
	}

	// Shutdown: the grace period covers the preStop pause and
	// IDP_SHUTDOWN_GRACE.
	preStop := time.Duration(0)
	if l := server.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
		preStop = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
	}
	if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= preStop+cfg.ShutdownGrace {
		t.Errorf("terminationGracePeriodSeconds %v ≤ preStop %v + IDP_SHUTDOWN_GRACE %v", pod.TerminationGracePeriodSeconds, preStop, cfg.ShutdownGrace)
	}

	// Probes: readiness on /readyz, liveness on /healthz, on the port the
	// server listens on; every probe path answers 200 on a real server.
	_, port, _ := net.SplitHostPort(cfg.HTTPAddr)
	containerPort := map[string]int32{}
	for _, p := range server.Ports {
		containerPort[p.Name] = p.ContainerPort
	}
	probes := map[string]*corev1.Probe{"readiness": server.ReadinessProbe, "liveness": server.LivenessProbe, "startup": server.StartupProbe}
	if server.ReadinessProbe == nil || server.ReadinessProbe.HTTPGet == nil || server.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe %+v, want GET /readyz", server.ReadinessProbe)
	}
	if server.LivenessProbe == nil || server.LivenessProbe.HTTPGet == nil || server.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe %+v, want GET /healthz", server.LivenessProbe)
	}
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	for name, p := range probes {
		if p == nil {
			continue
		}
		if p.HTTPGet == nil {
			t.Errorf("%s probe is not an HTTP GET", name)
			continue
		}
		probePort := p.HTTPGet.Port.IntVal
		if p.HTTPGet.Port.StrVal != "" {
			probePort = containerPort[p.HTTPGet.Port.StrVal]
		}
		if strconv.Itoa(int(probePort)) != port {
			t.Errorf("%s probe on port %v, but idp listens on %s", name, p.HTTPGet.Port.String(), port)
		}
		if r := s.get(p.HTTPGet.Path, ""); r.status != http.StatusOK {
			t.Errorf("%s probe GET %s: %d", name, p.HTTPGet.Path, r.status)
		}
	}

	// Metrics: the operations listener has a container port, which the
	// scrape annotations name and the Service does not expose.
	opsHost, opsPort, _ := net.SplitHostPort(cfg.OpsAddr)
	if opsHost != "" || containerPort["ops"] == 0 || strconv.Itoa(int(containerPort["ops"])) != opsPort {
		t.Errorf("IDP_OPS_ADDR %q: want :port with a container port named ops (%v)", cfg.OpsAddr, containerPort)
	}
	ann := d.Spec.Template.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != opsPort || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("pod annotations %v: want Prometheus to scrape /metrics on port %s", ann, opsPort)
	}
	for _, sp := range m.service.Spec.Ports {
		if sp.TargetPort.StrVal == "ops" || sp.TargetPort.IntVal == containerPort["ops"] {
			t.Errorf("the Service exposes the operations port: %+v", sp)
		}
	}

	// The Service, the budget and the autoscaler point at these pods.
	podLabels := d.Spec.Template.Labels
	for name, sel := range map[string]map[string]string{
		"Deployment": d.Spec.Selector.MatchLabels, "Service": m.service.Spec.Selector, "PodDisruptionBudget": m.pdb.Spec.Selector.MatchLabels,
	} {
		if len(sel) == 0 {
			t.Errorf("%s has no selector", name)
		}
		for k, v := range sel {
			if podLabels[k] != v {
				t.Errorf("%s selects %s=%s, which the server pods do not have", name, k, v)
			}
		}
	}
	if matchesAll(m.service.Spec.Selector, m.job.Spec.Template.Labels) {
		t.Error("the Service would send traffic to the migration Job's pod")
	}
	for _, sp := range m.service.Spec.Ports {
		if sp.TargetPort.StrVal != "" && containerPort[sp.TargetPort.StrVal] == 0 {
			t.Errorf("Service targetPort %s names no container port", sp.TargetPort.StrVal)
		}
	}
	ref := m.hpa.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || ref.Name != d.Name || ref.APIVersion != "apps/v1" {
		t.Errorf("HPA scales %+v, not the Deployment %s", ref, d.Name)
	}
	cpuMetric := false
	for _, mt := range m.hpa.Spec.Metrics {
		if mt.Type == autoscalingv2.ResourceMetricSourceType && mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU {
			cpuMetric = true
		}
	}
	if !cpuMetric || m.hpa.Spec.MinReplicas == nil || *m.hpa.Spec.MinReplicas < 2 {
		t.Errorf("HPA: want a CPU metric and at least 2 replicas")
	}
	if d.Spec.Replicas != nil {
		t.Error("the Deployment sets replicas: every apply would reset what the HPA chose")
	}
	if pod.ServiceAccountName != m.serviceAccount.Name || job.ServiceAccountName != m.serviceAccount.Name {
		t.Errorf("pods run as %q and %q, not the ServiceAccount %s", pod.ServiceAccountName, job.ServiceAccountName, m.serviceAccount.Name)
	}
}

func matchesAll(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// loadDockerfileUser is the numeric user id of the image's final USER.
func loadDockerfileUser(t *testing.T) (int64, bool) {
	t.Helper()
	stages := loadDockerfile(t)
	user, ok := stages[len(stages)-1].last("USER")
	if !ok {
		return 0, false
	}
	uid, _, _ := strings.Cut(user.args, ":")
	n, err := strconv.ParseInt(uid, 10, 64)
	return n, err == nil
}

// ---------------------------------------------------------------------------
// Documentation

// TestLicense: the repository carries the Apache License 2.0 that
// api/openapi.yaml names.
func TestLicense(t *testing.T) {
	text := readRepoFile(t, "LICENSE")
	for _, want := range []string{"Apache License\n                           Version 2.0, January 2004", "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
		"END OF TERMS AND CONDITIONS", "Copyright 2026 the idp authors"} {
		if !strings.Contains(text, want) {
			t.Errorf("LICENSE lacks %q", want)
		}
	}
	doc, err := loadOpenAPI(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if l := doc.Info.License; l == nil || l.Name != "Apache-2.0" || l.URL != "https://www.apache.org/licenses/LICENSE-2.0" {
		t.Errorf("api/openapi.yaml license %+v", l)
	}
}

// TestOperationsDocListsEverySetting fails when a variable the binary reads
// is missing from the configuration reference, or when the documentation
// names a variable the binary does not read.
func TestOperationsDocListsEverySetting(t *testing.T) {
	ops := readRepoFile(t, "docs/operations.md")
	for _, name := range envNames() {
		if !regexp.MustCompile("`" + name + "`").MatchString(ops) {
			t.Errorf("docs/operations.md does not document %s", name)
		}
	}
	mention := regexp.MustCompile(`\bIDP_[A-Z0-9_]*[A-Z0-9]\b`)
	for _, doc := range []string{"docs/operations.md", "docs/design.md", "README.md"} {
		sc := bufio.NewScanner(strings.NewReader(readRepoFile(t, doc)))
		for line := 1; sc.Scan(); line++ {
			for _, name := range mention.FindAllString(sc.Text(), -1) {
				if name != "IDP_TEST_MYSQL_DSN" && name != "IDP_TEST_POSTGRES_DSN" && !knownEnv(name) {
					t.Errorf("%s:%d names %s, which idp does not read", doc, line, name)
				}
			}
		}
	}
}

// ---------------------------------------------------------------------------
// idp healthcheck, the image's HEALTHCHECK

func TestHealthcheck(t *testing.T) {
	ctx := context.Background()
	s := startServer(t, "sqlite://"+t.TempDir()+"/idp.db")
	healthcheck := func(vars map[string]string, args ...string) (string, error) {
		var out, errb strings.Builder
		err := run(ctx, append([]string{"healthcheck"}, args...), env(vars), &out, &errb)
		return out.String() + errb.String(), err
	}
	if out, err := healthcheck(nil, "--url", s.URL+"/healthz"); err != nil || !strings.Contains(out, "200") {
		t.Errorf("healthcheck of a running server: %v %q", err, out)
	}
	// Without --url: the port of IDP_HTTP_ADDR on the loopback interface.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(s.URL, "http://"))
	if _, err := healthcheck(map[string]string{"IDP_HTTP_ADDR": ":" + port}); err != nil {
		t.Errorf("healthcheck by IDP_HTTP_ADDR :%s: %v", port, err)
	}

	// A closed port, an answer other than 200, a server that does not
	// answer in time: each fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	if _, err := healthcheck(nil, "--url", "http://"+closed+"/healthz"); err == nil {
		t.Error("healthcheck of a closed port succeeded")
	}
	if _, err := healthcheck(map[string]string{"IDP_HTTP_ADDR": closed}); err == nil {
		t.Error("healthcheck by IDP_HTTP_ADDR of a closed port succeeded")
	}
	if _, err := healthcheck(nil, "--url", s.URL+"/nowhere"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("healthcheck of a 404: %v", err)
	}
	if _, err := healthcheck(nil, "--url", s.URL+"/.well-known/change-password"); err == nil {
		t.Error("healthcheck followed a redirect")
	}
	hang := make(chan struct{})
	slow := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang })}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go slow.Serve(sl)
	t.Cleanup(func() { close(hang); slow.Close() })
	start := time.Now()
	if _, err := healthcheck(nil, "--url", "http://"+sl.Addr().String()+"/healthz", "--timeout", "200ms"); err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("healthcheck of a hanging server: %v after %v", err, time.Since(start))
	}
	if healthcheckTimeout != 2*time.Second {
		t.Errorf("default timeout %v", healthcheckTimeout)
	}
}

func TestHealthzURL(t *testing.T) {
	for addr, want := range map[string]string{
		":8080":           "http://127.0.0.1:8080/healthz",
		"0.0.0.0:9000":    "http://127.0.0.1:9000/healthz",
		"[::]:8080":       "http://127.0.0.1:8080/healthz",
		"127.0.0.1:8081":  "http://127.0.0.1:8081/healthz",
		"[::1]:8080":      "http://[::1]:8080/healthz",
		"idp.internal:80": "http://idp.internal:80/healthz",
		"8080":            "",
		":0":              "",
	} {
		got, err := healthzURL(addr)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("healthzURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}
