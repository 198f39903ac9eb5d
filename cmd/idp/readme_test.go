package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The README's ```sh blocks are what a new user pastes, in order, into a
// shell on a fresh clone with `make run` going in another. TestReadme does
// exactly that: it builds ./cmd/idp, starts `idp serve` on the embedded
// default in a temporary directory (with its own data/), and runs every
// block in order in one bash with `set -euo pipefail`, in that directory.
//
// The harness changes the blocks in these ways only:
//   - localhost:8080, the address of `make run`, becomes the test server's
//     (localhost and a free port: the server runs with IDP_HTTP_ADDR set to
//     it, which makes its issuer http://localhost:<port>, as 8080 does);
//   - 127.0.0.1:9090, the default operations listener, becomes the test
//     server's (IDP_OPS_ADDR on another free port);
//   - `go run ./cmd/idp` becomes the binary the test built from ./cmd/idp
//     (what go run would build, without building it again per command).
//
// A block that cannot run here is skipped only when the line before its
// fence is a marker `<!-- readme-test: skip: REASON -->` whose REASON is one
// of readmeSkips; any other marker fails the test, so that no block is left
// out silently.
var readmeSkips = []string{
	"make run and make test",      // the server this test starts, and the suite it is part of
	"docker compose",              // needs Docker and the network
	"needs a person at a browser", // idp login; TestNativeAppLogin runs it with a scripted browser
}

// readmeTools are the programs the blocks need besides the shell builtins.
var readmeTools = []string{"bash", "curl", "jq", "base64", "grep", "head", "tail", "sleep"}

type readmeBlock struct {
	line int    // of the opening fence
	src  string // the commands
	skip string // the marker's reason, if skipped
}

var readmeSkipMarker = regexp.MustCompile(`^<!--\s*readme-test:\s*skip:\s*(.*?)\s*-->$`)

// readmeBlocks extracts the ```sh blocks of a Markdown document.
func readmeBlocks(doc string) ([]readmeBlock, error) {
	var (
		blocks  []readmeBlock
		cur     *readmeBlock
		prev    string // the last non-blank line outside a block
		lineNo  int
		builder strings.Builder
	)
	sc := bufio.NewScanner(strings.NewReader(doc))
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur != nil {
			if trimmed == "```" {
				cur.src = builder.String()
				blocks = append(blocks, *cur)
				cur = nil
				prev = ""
				continue
			}
			builder.WriteString(line + "\n")
			continue
		}
		if lang, ok := strings.CutPrefix(trimmed, "```"); ok {
			switch lang {
			case "sh":
				cur = &readmeBlock{line: lineNo}
				builder.Reset()
				if m := readmeSkipMarker.FindStringSubmatch(prev); m != nil {
					if !slices.Contains(readmeSkips, m[1]) {
						return nil, fmt.Errorf("line %d: skip marker %q is not one of readmeSkips %q", lineNo-1, m[1], readmeSkips)
					}
					cur.skip = m[1]
				}
				continue
			case "bash", "shell", "console", "zsh":
				// Every shell block must be run: call it sh.
				return nil, fmt.Errorf("line %d: a ```%s block; shell commands go in ```sh blocks, which the test runs", lineNo, lang)
			}
			// Another language (json, plain text): a block that is not run.
			cur = nil
			for sc.Scan() {
				lineNo++
				if strings.TrimSpace(sc.Text()) == "```" {
					break
				}
			}
			prev = ""
			continue
		}
		if strings.HasPrefix(trimmed, "<!--") && readmeSkipMarker.FindStringSubmatch(trimmed) == nil && strings.Contains(trimmed, "readme-test") {
			return nil, fmt.Errorf("line %d: malformed marker %q, want <!-- readme-test: skip: REASON -->", lineNo, trimmed)
		}
		if trimmed != "" {
			if prevMarker := readmeSkipMarker.MatchString(prev); prevMarker {
				return nil, fmt.Errorf("line %d: a skip marker must come right before a ```sh fence", lineNo-1)
			}
			prev = trimmed
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: unterminated ```sh block", cur.line)
	}
	return blocks, sc.Err()
}

// runBlocks runs blocks in order in one bash (so that variables carry from
// one to the next) with set -euo pipefail, in dir. It returns the index of
// the block that failed, -1 when all succeeded, and the output of the
// failing block (or of all).
func runBlocks(ctx context.Context, dir string, env []string, blocks []string) (failed int, output string, err error) {
	var script strings.Builder
	script.WriteString("set -euo pipefail\n")
	for i, b := range blocks {
		fmt.Fprintf(&script, "printf '\\n@@readme-block %d@@\\n'\n%s\n", i, b)
	}
	script.WriteString("printf '\\n@@readme-done@@\\n'\n")
	cmd := exec.CommandContext(ctx, "bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = nil
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err == nil && strings.Contains(text, "@@readme-done@@") {
		return -1, text, nil
	}
	if err == nil {
		err = fmt.Errorf("the script stopped early")
	}
	failed = 0
	for i := range blocks {
		if strings.Contains(text, fmt.Sprintf("@@readme-block %d@@", i)) {
			failed = i
		}
	}
	_, after, _ := strings.Cut(text, fmt.Sprintf("@@readme-block %d@@\n", failed))
	return failed, after, err
}

// TestReadmeHarness: runBlocks fails on a failing command, an unset
// variable and a failure inside a pipeline, names the block, and runs
// nothing after it.
func TestReadmeHarness(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("needs bash")
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	ctx := context.Background()
	if failed, out, err := runBlocks(ctx, t.TempDir(), env, []string{"X=1", "echo $X"}); err != nil || failed != -1 || !strings.Contains(out, "1\n") {
		t.Errorf("good blocks: %d %v %q", failed, err, out)
	}
	for _, bad := range []string{"false", "echo $UNSET_IN_README", "false | cat", "Y=$(false)", "curl-that-does-not-exist"} {
		failed, out, err := runBlocks(ctx, t.TempDir(), env, []string{"echo first", "echo second; " + bad, "echo never"})
		if err == nil || failed != 1 || strings.Contains(out, "never") || !strings.Contains(out, "second") {
			t.Errorf("%q: block %d, %v, %q: want block 1 to fail and nothing after it", bad, failed, err, out)
		}
	}
	blocks, err := readmeBlocks("# t\n\n<!-- readme-test: skip: docker compose -->\n```sh\ndocker compose up\n```\n\n```json\n{}\n```\n\n```sh\necho a\n```\n")
	if err != nil || len(blocks) != 2 || blocks[0].skip != "docker compose" || blocks[1].skip != "" || blocks[1].src != "echo a\n" {
		t.Errorf("readmeBlocks: %v %+v", err, blocks)
	}
	for _, doc := range []string{
		"<!-- readme-test: skip: because -->\n```sh\nx\n```\n",              // a reason not listed
		"<!-- readme-test: skip: docker compose -->\ntext\n```sh\nx\n```\n", // not right before
		"```bash\nx\n```\n", // a shell block under another name
		"```sh\nx\n",        // unterminated
	} {
		if _, err := readmeBlocks(doc); err == nil {
			t.Errorf("readmeBlocks accepted %q", doc)
		}
	}
}

// TestReadme runs the README's commands against a real server; see the top
// of this file.
func TestReadme(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server")
	}
	var missing []string
	for _, tool := range readmeTools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("the README's commands need %s: install them (Debian, Ubuntu: apt-get install %s)", strings.Join(missing, ", "), strings.Join(missing, " "))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	blocks, err := readmeBlocks(readRepoFile(t, "README.md"))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	// The README starts with the two commands a newcomer needs.
	if len(blocks) == 0 || !regexp.MustCompile(`^make run\b.*\nmake test\b.*\n$`).MatchString(blocks[0].src) {
		t.Errorf("the README's first block is not `make run` and `make test`: %+v", blocks[:min(1, len(blocks))])
	}

	bin := buildIDP(t)
	dir := t.TempDir()
	port, opsPort := freeLoopbackPort(t), freeLoopbackPort(t)
	env := readmeEnv()
	server := exec.Command(bin, "serve")
	server.Dir = dir
	server.Env = append(slices.Clone(env), "IDP_HTTP_ADDR=localhost:"+port, "IDP_OPS_ADDR=127.0.0.1:"+opsPort)
	logs := new(syncBuffer)
	server.Stdout, server.Stderr = logs, logs
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- server.Wait() }()
	t.Cleanup(func() {
		server.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			server.Process.Kill()
			<-exited
		}
	})
	waitReady(t, "http://127.0.0.1:"+port+"/readyz", exited, logs)

	replacer := strings.NewReplacer(
		"localhost:8080", "localhost:"+port,
		"127.0.0.1:9090", "127.0.0.1:"+opsPort,
		"go run ./cmd/idp", shellQuote(bin),
	)
	var run []string
	var ran []readmeBlock
	for _, b := range blocks {
		if b.skip != "" {
			t.Logf("README.md:%d: skipped (%s)", b.line, b.skip)
			continue
		}
		// Never from inside the suite: make run would not return, and make
		// test would run this test again.
		if regexp.MustCompile(`(?m)^\s*make (run|test)\b`).MatchString(b.src) {
			t.Fatalf("README.md:%d: a block runs make run or make test; mark it <!-- readme-test: skip: make run and make test -->", b.line)
		}
		run = append(run, replacer.Replace(b.src))
		ran = append(ran, b)
	}
	if len(ran) < 10 {
		t.Errorf("only %d blocks to run", len(ran))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	failed, out, err := runBlocks(ctx, dir, env, run)
	if err != nil {
		t.Fatalf("README.md:%d: the block fails (%v):\n%s\noutput:\n%s\nserver log (tail):\n%s",
			ran[failed].line, err, ran[failed].src, out, tail(logs.String(), 4000))
	}
	t.Logf("ran %d blocks of README.md", len(ran))
}

// readmeEnv is the test's environment without IDP_ variables, which would
// change the defaults the README describes.
func readmeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IDP_") {
			env = append(env, kv)
		}
	}
	return env
}

// waitReady polls url until it answers 200, failing if the server exits.
func waitReady(t *testing.T, url string, exited <-chan error, logs *syncBuffer) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			t.Fatalf("the server exited: %v\n%s", err, logs)
		default:
		}
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered 200:\n%s", url, logs)
}

// buildIDP builds ./cmd/idp into the test's temporary directory and returns
// the binary's path.
func buildIDP(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out := filepath.Join(t.TempDir(), "idp")
	cmd := exec.Command(goBin, "build", "-o", out, ".")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/idp: %v\n%s", err, b)
	}
	return out
}

// freeLoopbackPort is a port free on 127.0.0.1 (and, where there is one,
// ::1) a moment ago.
func freeLoopbackPort(t *testing.T) string {
	t.Helper()
	for range 20 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
		ln6, err6 := net.Listen("tcp", "[::1]:"+port)
		ln.Close()
		if err6 == nil {
			ln6.Close()
			return port
		}
		probe, err := net.Listen("tcp", "[::1]:0")
		if err != nil {
			return port // no IPv6 loopback
		}
		probe.Close()
	}
	t.Fatal("no free port on both loopback addresses")
	return ""
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
