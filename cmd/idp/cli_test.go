package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"idp/database/databasetest"
	"idp/oauth"
	"idp/storage"
)

// env is a fixed environment for run.
func env(vars map[string]string) lookupEnv {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

func runCmd(t *testing.T, vars map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errb bytes.Buffer
	err = run(context.Background(), args, env(vars), &out, &errb)
	return out.String(), errb.String(), err
}

func TestCommands(t *testing.T) {
	for _, e := range databasetest.Engines(t) {
		t.Run(e.Name, func(t *testing.T) {
			vars := map[string]string{
				"IDP_DATABASE_URL":          e.NewURL(t),
				"IDP_ISSUER":                "https://id.example.com",
				"IDP_KEY_ENCRYPTION_KEY":    testKEK,
				"IDP_REFRESH_TOKEN_SECRETS": testRefreshSecret,
				"IDP_DATA_DIR":              t.TempDir(),
				"IDP_PICTURES_URL":          t.TempDir(),
			}
			if out, _, err := runCmd(t, vars, "migrate"); err != nil || !strings.Contains(out, "up to date") {
				t.Fatalf("migrate: %v %q", err, out)
			}
			out, _, err := runCmd(t, vars, "client", "create", "--id", "reports", "--grant-types", "client_credentials", "--scopes", "users:stats")
			if err != nil {
				t.Fatal(err)
			}
			var created map[string]string
			if err := json.Unmarshal([]byte(out), &created); err != nil || created["client_id"] != "reports" || len(created["client_secret"]) < 40 {
				t.Fatalf("client create printed %q", out)
			}
			out, _, err = runCmd(t, vars, "client", "create", "--id", "app", "--public", "--grant-types", "password,refresh_token", "--scopes", "openid offline_access")
			if err != nil || strings.Contains(out, "client_secret") {
				t.Fatalf("public client: %v %q", err, out)
			}
			if _, _, err := runCmd(t, vars, "client", "create", "--id", "reports", "--grant-types", "client_credentials"); err == nil || !strings.Contains(err.Error(), "exists") {
				t.Errorf("duplicate client: %v", err)
			}
			if _, _, err := runCmd(t, vars, "client", "create", "--id", "x", "--public", "--grant-types", "client_credentials"); err == nil {
				t.Error("a public client_credentials client was created")
			}

			// The secret printed once works at the token endpoint.
			s := startServer(t, vars["IDP_DATABASE_URL"])
			r := s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"users:stats"}}, "reports", created["client_secret"])
			if r.status != 200 {
				t.Errorf("created client: %d %s", r.status, r.body)
			}

			out, _, err = runCmd(t, vars, "keys", "list")
			if err != nil || strings.Count(out, "active") != 1 {
				t.Fatalf("keys list: %v\n%s", err, out)
			}
			out, _, err = runCmd(t, vars, "keys", "rotate")
			if err != nil || !strings.Contains(out, "signs from") {
				t.Fatalf("keys rotate: %v %q", err, out)
			}
			out, _, err = runCmd(t, vars, "keys", "list", "--json")
			var list []map[string]any
			if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 {
				t.Fatalf("keys list --json: %v %q", err, out)
			}
			for _, name := range []string{"kid", "state", "alg", "bits", "created_at", "activates_at", "activated_at", "retired_at", "remove_after"} {
				if _, ok := list[0][name]; !ok {
					t.Errorf("keys list --json has no %q: %s", name, out)
				}
			}
			if strings.Contains(out, `"ID"`) || strings.Contains(out, `"CreatedAt"`) {
				t.Errorf("keys list --json uses Go field names: %s", out)
			}
			// A running server reads the keys every IDP_KEY_REFRESH_INTERVAL:
			// the output must not claim more than that.
			if out, _, err = runCmd(t, vars, "keys", "rotate", "--now"); err != nil || strings.Contains(out, "signs now") ||
				!strings.Contains(out, "running servers") || !strings.Contains(out, "IDP_KEY_REFRESH_INTERVAL (1m0s)") {
				t.Fatalf("keys rotate --now: %v %q", err, out)
			}
			if _, _, err := runCmd(t, vars, "keys", "nope"); err == nil {
				t.Error("unknown subcommand accepted")
			}

			testClientCommands(t, vars, created["client_secret"])
		})
	}
}

// testClientCommands: client list, rotate-secret and delete, on the
// clients TestCommands created ("reports", confidential, with oldSecret;
// "app", public).
func testClientCommands(t *testing.T, vars map[string]string, oldSecret string) {
	token := func(s *testServer, secret string) int {
		return s.postForm("/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"users:stats"}}, "reports", secret).status
	}

	out, _, err := runCmd(t, vars, "client", "list")
	if err != nil {
		t.Fatal(err)
	}
	// Besides the two: the account page's own client, which every
	// deployment has.
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "CLIENT ID") ||
		!strings.Contains(lines[1], "app") || !strings.Contains(lines[1], "public") ||
		!strings.Contains(lines[2], "idp-account") || !strings.Contains(lines[2], "first-party") ||
		!strings.Contains(lines[3], "reports") || !strings.Contains(lines[3], "confidential") || !strings.Contains(lines[3], "client_credentials") {
		t.Errorf("client list:\n%s", out)
	}
	out, _, err = runCmd(t, vars, "client", "list", "--json")
	var list []map[string]any
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 3 || list[0]["client_id"] != "app" || list[0]["public"] != true ||
		list[1]["client_id"] != "idp-account" || list[2]["client_id"] != "reports" || list[2]["public"] != false {
		t.Fatalf("client list --json: %v %s", err, out)
	}
	for _, name := range []string{"grant_types", "scopes", "audience", "redirect_uris", "created_at"} {
		if _, ok := list[2][name]; !ok {
			t.Errorf("client list --json has no %q: %s", name, out)
		}
	}
	if strings.Contains(out, "secret") || strings.Contains(out, oldSecret) {
		t.Errorf("client list shows a secret: %s", out)
	}

	// rotate-secret prints a new secret, once, as JSON on stdout; the old one
	// stops working (for a server started afterwards at once; running ones
	// within the client cache's lifetime, which stderr says).
	out, stderr, err := runCmd(t, vars, "client", "rotate-secret", "--id", "reports")
	var rotated map[string]string
	if err != nil || json.Unmarshal([]byte(out), &rotated) != nil || rotated["client_id"] != "reports" ||
		len(rotated["client_secret"]) < 40 || rotated["client_secret"] == oldSecret {
		t.Fatalf("client rotate-secret: %v %q", err, out)
	}
	if !strings.Contains(stderr, "30s") {
		t.Errorf("rotate-secret does not say when running servers notice: %q", stderr)
	}
	s := startServer(t, vars["IDP_DATABASE_URL"])
	if code := token(s, oldSecret); code != 401 {
		t.Errorf("the old secret after rotate-secret: %d", code)
	}
	if code := token(s, rotated["client_secret"]); code != 200 {
		t.Errorf("the new secret: %d", code)
	}
	s.stop()
	for _, c := range []struct{ id, want string }{
		{"app", "public"},      // a public client has no secret to rotate
		{"nobody", "no such"},  // nor has a client that does not exist
		{"Reports", "no such"}, // ids are exact, whatever the collation
		{"", "no such"},
	} {
		if _, _, err := runCmd(t, vars, "client", "rotate-secret", "--id", c.id); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("rotate-secret --id %q: %v, want an error saying %q", c.id, err, c.want)
		}
	}

	// delete removes the client: gone from the list, refused by a server.
	for _, id := range []string{"nobody", "Reports"} {
		if _, _, err := runCmd(t, vars, "client", "delete", "--id", id); err == nil || !strings.Contains(err.Error(), "no such client") {
			t.Errorf("delete --id %s: %v", id, err)
		}
	}
	if out, _, err := runCmd(t, vars, "client", "delete", "--id", "reports"); err != nil || !strings.Contains(out, "deleted") || !strings.Contains(out, "30s") {
		t.Fatalf("client delete: %v %q", err, out)
	}
	if out, _, _ := runCmd(t, vars, "client", "list"); strings.Contains(out, "reports") || !strings.Contains(out, "app") {
		t.Errorf("client list after delete:\n%s", out)
	}
	s = startServer(t, vars["IDP_DATABASE_URL"])
	if code := token(s, rotated["client_secret"]); code != 401 {
		t.Errorf("a deleted client: %d", code)
	}
	if _, _, err := runCmd(t, vars, "client", "delete", "--id", "reports"); err == nil {
		t.Error("deleting a deleted client succeeded")
	}
}

// TestClientCreateBrowserFlags: client create registers first-party
// status and post-logout redirect URIs, which client list shows, and
// refuses a redirect or post-logout URI that breaks the rules, saying why.
func TestClientCreateBrowserFlags(t *testing.T) {
	vars := map[string]string{
		"IDP_DATABASE_URL":          databasetest.SQLiteURL(t),
		"IDP_ISSUER":                "https://id.example.com",
		"IDP_KEY_ENCRYPTION_KEY":    testKEK,
		"IDP_REFRESH_TOKEN_SECRETS": testRefreshSecret,
		"IDP_DATA_DIR":              t.TempDir(),
		"IDP_PICTURES_URL":          t.TempDir(),
	}
	if _, _, err := runCmd(t, vars, "client", "create", "--id", "app", "--public", "--first-party", "--grant-types", "password",
		"--scopes", "openid", "--redirect-uri", "com.example.app:/cb", "--redirect-uri", "http://127.0.0.1/cb",
		"--post-logout-redirect-uri", "com.example.app:/bye", "--post-logout-redirect-uri", "https://app.example.com/bye"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := runCmd(t, vars, "client", "create", "--id", "web", "--grant-types", "password", "--scopes", "openid"); err != nil {
		t.Fatal(err)
	}
	out, _, err := runCmd(t, vars, "client", "list", "--json")
	var list []struct {
		ID         string   `json:"client_id"`
		FirstParty *bool    `json:"first_party"`
		Redirects  []string `json:"redirect_uris"`
		PostLogout []string `json:"post_logout_redirect_uris"`
	}
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 {
		t.Fatalf("client list --json: %v %s", err, out)
	}
	app, web := list[0], list[1]
	if app.ID != "app" || app.FirstParty == nil || !*app.FirstParty ||
		!slices.Equal(app.Redirects, []string{"com.example.app:/cb", "http://127.0.0.1/cb"}) ||
		!slices.Equal(app.PostLogout, []string{"com.example.app:/bye", "https://app.example.com/bye"}) {
		t.Errorf("app: %s", out)
	}
	if web.ID != "web" || web.FirstParty == nil || *web.FirstParty || web.PostLogout == nil || len(web.PostLogout) != 0 {
		t.Errorf("web: %s", out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--public", "--redirect-uri", "http://app.example.com/cb"}, `redirect URI "http://app.example.com/cb": plain http is allowed only for loopback`},
		{[]string{"--public", "--post-logout-redirect-uri", "javascript:alert(1)"}, `post-logout redirect URI "javascript:alert(1)"`},
		{[]string{"--redirect-uri", "com.example.app:/cb"}, "only for public clients"},
		{[]string{"--public", "--redirect-uri", "https://app.example.com/cb#x"}, "fragment"},
	} {
		args := append([]string{"client", "create", "--id", "bad", "--grant-types", "password"}, c.args...)
		if _, _, err := runCmd(t, vars, args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want an error saying %q", c.args, err, c.want)
		}
	}
	if out, _, _ := runCmd(t, vars, "client", "list"); !strings.Contains(out, "public,first-party") || strings.Contains(out, "confidential,first-party") {
		t.Errorf("client list does not say which client is first-party:\n%s", out)
	}
	if out, _, _ := runCmd(t, vars, "client", "list"); strings.Contains(out, "bad") {
		t.Errorf("a refused client was registered:\n%s", out)
	}
}

// TestMobileClientUpgrade: a data directory whose mobile client has the
// shape of an older version (password and refresh_token only, no
// redirect URIs, not first-party) gets what the embedded default's mobile
// client holds now on the next start, and keeps what was added to it.
func TestMobileClientUpgrade(t *testing.T) {
	dir := t.TempDir()
	vars := map[string]string{"IDP_DATA_DIR": dir}
	if _, _, err := runCmd(t, vars, "migrate"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	db := databasetest.Open(t, "sqlite://"+filepath.Join(dir, "idp.db"))
	if _, err := oauth.NewClients(storage.New(db), 0).Create(ctx, oauth.NewClient{ID: "mobile", Public: true,
		GrantTypes: []string{oauth.GrantPassword, oauth.GrantRefreshToken},
		Scopes:     []string{oauth.ScopeOpenID, oauth.ScopeProfile, oauth.ScopeEmail, oauth.ScopeOfflineAccess},
		// What an operator added by hand stays.
		Audience: []string{"https://api.example.com"}, RedirectURIs: []string{"com.example.own:/cb"}}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	vars["IDP_HTTP_ADDR"] = "127.0.0.1:0"
	logged(t, runServe(t, vars), "listening")
	out, _, err := runCmd(t, map[string]string{"IDP_DATA_DIR": dir}, "client", "list", "--json")
	var list []oauth.ClientInfo
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 2 || list[0].ID != "idp-account" {
		t.Fatalf("client list --json: %v %s", err, out)
	}
	m := list[1]
	if m.ID != "mobile" || !m.Public || !m.FirstParty ||
		!slices.Equal(m.GrantTypes, []string{oauth.GrantPassword, oauth.GrantRefreshToken, oauth.GrantAuthorizationCode}) ||
		!slices.Equal(m.Scopes, mobileClient.Scopes) ||
		!slices.Equal(m.RedirectURIs, []string{"com.example.own:/cb", "http://127.0.0.1/callback", "com.example.idp:/callback"}) ||
		!slices.Equal(m.Audience, []string{"https://api.example.com"}) {
		t.Errorf("the mobile client after the upgrade: %+v", m)
	}
}

// TestLoginFails: idp login exits non-zero, saying why, when the issuer
// does not answer; it asks the configured issuer unless told another.
// (The sign-in itself is nativeapp's test, and the end-to-end tests'.)
func TestLoginFails(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there now
	vars := map[string]string{"IDP_DATA_DIR": t.TempDir(), "IDP_ISSUER": issuer}
	out, _, err := runCmd(t, vars, "login", "--no-browser", "--timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), "discovery") || !strings.Contains(err.Error(), ln.Addr().String()) || out != "" {
		t.Errorf("login against a closed port: %v, stdout %q", err, out)
	}
	if _, _, err := runCmd(t, map[string]string{"IDP_DATA_DIR": t.TempDir()}, "login", "--issuer", issuer, "--no-browser", "--timeout", "5s"); err == nil ||
		!strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("login --issuer: %v", err)
	}
}

// TestHelp: -h, --help and help print the commands and exit 0, each
// command's -h its own flags, and a missing or unknown subcommand is named.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"help"}} {
		out, _, err := runCmd(t, nil, args...)
		if err != nil || !strings.Contains(out, "client rotate-secret") || !strings.Contains(out, "version") || !strings.Contains(out, "\n  login ") ||
			!strings.Contains(out, `"idp serve -h" lists them all`) {
			t.Errorf("idp %v: %v\n%s", args, err, out)
		}
	}
	out, _, err := runCmd(t, nil, "serve", "-h")
	if err != nil || !strings.Contains(out, "-http-addr") || !strings.Contains(out, "(IDP_HTTP_ADDR)") || !strings.Contains(out, "-ops-addr") {
		t.Errorf("serve -h: %v\n%s", err, out)
	}
	configFlags := strings.Count(out, "\n  -")
	if configFlags < 30 {
		t.Errorf("serve -h lists %d flags:\n%s", configFlags, out)
	}
	// The usage a mistyped flag prints goes to the logs: it shows the
	// built-in defaults, never the environment's secrets.
	vars := prodVars("IDP_DATABASE_URL", "mysql://idp:db-password-123@db:3306/idp", "IDP_SENDGRID_API_KEY", "SG.secret-sendgrid-key")
	for _, args := range [][]string{{"serve", "-h"}, {"serve", "--http-adr", ":8080"}} {
		out, errOut, _ := runCmd(t, vars, args...)
		for _, secret := range []string{testKEK, testRefreshSecret, "db-password-123", "SG.secret-sendgrid-key"} {
			if strings.Contains(out+errOut, secret) {
				t.Errorf("idp %v prints the secret %q", args, secret)
			}
		}
	}
	// A command's -h: its own flags only, then one line about the rest.
	for _, c := range []struct {
		args []string
		own  []string
	}{
		{[]string{"client", "create", "-h"}, []string{"-id", "-public", "-first-party", "-grant-types", "-scopes", "-audience", "-redirect-uri", "-post-logout-redirect-uri"}},
		{[]string{"client", "list", "--help"}, []string{"-json"}},
		{[]string{"client", "delete", "-h"}, []string{"-id"}},
		{[]string{"client", "rotate-secret", "-h"}, []string{"-id"}},
		{[]string{"keys", "list", "-h"}, []string{"-json"}},
		{[]string{"keys", "rotate", "-h"}, []string{"-now"}},
		{[]string{"healthcheck", "-h"}, []string{"-url", "-timeout"}},
		{[]string{"login", "-h"}, []string{"-client-id", "-scope", "-timeout", "-no-browser"}},
		{[]string{"migrate", "-h"}, nil},
	} {
		out, stderr, err := runCmd(t, nil, c.args...)
		if err != nil || stderr != "" {
			t.Errorf("%v: %v %q", c.args, err, stderr)
		}
		if n := strings.Count(out, "\n  -"); n != len(c.own) {
			t.Errorf("%v lists %d flags, want its own %d:\n%s", c.args, n, len(c.own), out)
		}
		for _, f := range c.own {
			if !strings.Contains(out, "\n  "+f+" ") && !strings.Contains(out, "\n  "+f+"\n") {
				t.Errorf("%v does not list %s:\n%s", c.args, f, out)
			}
		}
		if strings.Contains(out, "-http-addr") || !strings.Contains(out, `Every configuration flag of "idp serve -h"`) {
			t.Errorf("%v:\n%s", c.args, out)
		}
	}
	// Groups without a subcommand name their subcommands.
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"client"}, []string{`"client create"`, `"client list"`, `"client delete"`, `"client rotate-secret"`}},
		{[]string{"client", "--id", "x"}, []string{`"client create"`}},
		{[]string{"keys"}, []string{`"keys list"`, `"keys rotate"`}},
		{[]string{"client", "nope"}, []string{`unknown command "client nope"`, `"client rotate-secret"`}},
		{[]string{"nope"}, []string{`unknown command "nope"`}},
	} {
		_, _, err := runCmd(t, nil, c.args...)
		if err == nil {
			t.Errorf("%v succeeded", c.args)
			continue
		}
		if strings.Contains(err.Error(), `"client "`) {
			t.Errorf("%v: %v", c.args, err)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: %q does not say %s", c.args, err, w)
			}
		}
	}
	if out, _, err := runCmd(t, nil, "client", "-h"); err != nil || !strings.Contains(out, `"client rotate-secret"`) {
		t.Errorf("client -h: %v %q", err, out)
	}
	// A bad flag is an error, with the usage on stderr.
	if _, stderr, err := runCmd(t, nil, "client", "create", "--nope"); err == nil || !strings.Contains(stderr, "-grant-types") {
		t.Errorf("client create --nope: %v %q", err, stderr)
	}
}

// TestVersion: idp version prints the module version and the VCS revision
// the build recorded, and says "unknown" when it recorded none.
func TestVersion(t *testing.T) {
	out, _, err := runCmd(t, nil, "version")
	if err != nil || !strings.HasPrefix(out, "idp ") || !strings.Contains(out, "revision ") || !strings.Contains(out, runtime.Version()) {
		t.Errorf("version: %v %q", err, out)
	}
	stampedVCS := &debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"},
	}}
	for _, c := range []struct {
		bi      *debug.BuildInfo
		ok      bool
		stamped string
		want    []string
	}{
		{stampedVCS, true, "", []string{"idp v1.2.3\n", "revision 0123456789abcdef (2026-01-02T03:04:05Z) with uncommitted changes\n", "go1.26.1 "}},
		{stampedVCS, true, "feedface", []string{"revision 0123456789abcdef "}},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "", []string{"idp (devel)\n", "revision unknown"}},
		{&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "feedface-dirty", []string{"revision feedface-dirty\n"}},
		{nil, false, "", []string{"idp unknown\n", "revision unknown"}},
	} {
		got := versionText(c.bi, c.ok, c.stamped)
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("versionText(%+v, %q) = %q, want %q in it", c.bi, c.stamped, got, w)
			}
		}
	}
}

// TestExitCodes runs the built binary: help exits 0, a bad command line 1.
func TestExitCodes(t *testing.T) {
	bin := buildIDP(t)
	for _, c := range []struct {
		args []string
		code int
	}{
		{[]string{"-h"}, 0}, {[]string{"--help"}, 0}, {[]string{"help"}, 0}, {[]string{"serve", "-h"}, 0},
		{[]string{"client", "create", "-h"}, 0}, {[]string{"version"}, 0},
		{[]string{"nope"}, 1}, {[]string{"client"}, 1}, {[]string{"serve", "--nope"}, 1},
	} {
		cmd := exec.Command(bin, c.args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		cmd.Dir = t.TempDir()
		out, _ := cmd.CombinedOutput()
		if got := cmd.ProcessState.ExitCode(); got != c.code {
			t.Errorf("idp %v exits %d, want %d:\n%s", c.args, got, c.code, out)
		}
	}
}

// TestEmbeddedDefault starts `idp serve` with nothing configured but the
// data directory and the port, as `make run` does.
func TestEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	logs := runServe(t, map[string]string{"IDP_DATA_DIR": dir, "IDP_HTTP_ADDR": "127.0.0.1:0"})
	addr := logged(t, logs, "listening")
	s := &testServer{t: t, URL: "http://" + addr}
	// The issuer follows the port of IDP_HTTP_ADDR (here the one chosen for
	// port 0), on localhost.
	_, port, _ := net.SplitHostPort(addr)
	if iss := s.get("/.well-known/openid-configuration", "").json(t)["issuer"]; iss != "http://localhost:"+port {
		t.Errorf("issuer = %v, want http://localhost:%s", iss, port)
	}
	// The mobile client exists: a bad login is invalid_grant, not invalid_client.
	r := s.postForm("/oauth2/token", url.Values{"grant_type": {"password"}, "client_id": {"mobile"}, "username": {"x"}, "password": {"y"}}, "", "")
	if r.status != 400 || r.json(t)["error"] != "invalid_grant" {
		t.Errorf("mobile client: %d %s", r.status, r.body)
	}
	for _, name := range []string{"key-encryption-key", "refresh-token-secret"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", name, fi.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "idp.db")); err != nil {
		t.Error(err)
	}
	if s.get("/readyz", "").status != 200 || s.get("/healthz", "").status != 200 {
		t.Error("health endpoints")
	}
	// Plain http: no Strict-Transport-Security, which would pin the host.
	if h := s.get("/healthz", "").header.Get("Strict-Transport-Security"); h != "" {
		t.Errorf("http issuer sends Strict-Transport-Security %q", h)
	}
}

// TestDefaultAddresses: with nothing set, the embedded default listens on
// loopback only, at localhost:8080 with the issuer there, and production
// mode on every interface; the issuer follows IDP_HTTP_ADDR's port.
func TestDefaultAddresses(t *testing.T) {
	prod := map[string]string{
		"IDP_DATABASE_URL": "mysql://idp:pw@db:3306/idp", "IDP_ISSUER": "https://id.example.com",
		"IDP_KEY_ENCRYPTION_KEY": testKEK, "IDP_REFRESH_TOKEN_SECRETS": testRefreshSecret, "IDP_PICTURES_URL": "gs://pictures",
	}
	for _, tc := range []struct {
		name               string
		vars               map[string]string
		addr, issuer, opts string
	}{
		{"embedded", map[string]string{}, "localhost:8080", "http://localhost:8080", "127.0.0.1:9090"},
		{"embedded on another port", map[string]string{"IDP_HTTP_ADDR": "127.0.0.1:9999"}, "127.0.0.1:9999", "http://localhost:9999", "127.0.0.1:9090"},
		{"embedded, issuer set", map[string]string{"IDP_HTTP_ADDR": ":9999", "IDP_ISSUER": "http://idp.test:80"}, ":9999", "http://idp.test:80", "127.0.0.1:9090"},
		{"no operations listener", map[string]string{"IDP_OPS_ADDR": ""}, "localhost:8080", "http://localhost:8080", ""},
		{"production", prod, ":8080", "https://id.example.com", "127.0.0.1:9090"},
	} {
		cfg, err := configFrom(tc.vars)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if cfg.HTTPAddr != tc.addr || cfg.Issuer != tc.issuer || cfg.OpsAddr != tc.opts {
			t.Errorf("%s: listens on %q with issuer %q and operations on %q, want %q, %q, %q",
				tc.name, cfg.HTTPAddr, cfg.Issuer, cfg.OpsAddr, tc.addr, tc.issuer, tc.opts)
		}
		if cfg.ChangePasswordURL != cfg.Issuer+"/account#password" {
			t.Errorf("%s: change-password URL %q", tc.name, cfg.ChangePasswordURL)
		}
	}
}

// TestLocalhostListensOnLoopbackOnly: "localhost:port" accepts on 127.0.0.1
// and, where the machine has IPv6, on ::1, and on no other address.
func TestLocalhostListensOnLoopbackOnly(t *testing.T) {
	ln, err := listen("localhost:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); host != "127.0.0.1" {
		t.Errorf("listens on %s", ln.Addr())
	}
	dial := func(host string) error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(host, port), 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		b, err := io.ReadAll(c)
		if err == nil && string(b) != "hi" {
			err = fmt.Errorf("read %q", b)
		}
		return err
	}
	if err := dial("127.0.0.1"); err != nil {
		t.Errorf("127.0.0.1: %v", err)
	}
	if v6, err := net.Listen("tcp", "[::1]:0"); err == nil {
		v6.Close()
		if err := dial("::1"); err != nil {
			t.Errorf("::1: %v", err)
		}
	}
	// The sockets are bound to the loopback addresses, never the wildcard.
	if m, ok := ln.(*multiListener); ok {
		for _, l := range m.lns {
			if ip := l.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
				t.Errorf("bound to %s", ip)
			}
		}
	} else if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		t.Errorf("bound to %s", ip)
	}
	ln.Close()
	if err := dial("127.0.0.1"); err == nil {
		t.Error("still accepting after Close")
	}
}

// TestDebugListener: the operations listener (IDP_OPS_ADDR) serves the
// metrics, the health endpoints and, only when IDP_OPS_PROFILER is on, the
// profiler; the public port serves health but neither metrics nor profiler.
func TestDebugListener(t *testing.T) {
	get := func(base, path string) (int, string) {
		t.Helper()
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return res.StatusCode, string(body)
	}
	for _, profiler := range []bool{true, false} {
		t.Run(fmt.Sprint("profiler=", profiler), func(t *testing.T) {
			logs := runServe(t, map[string]string{"IDP_DATA_DIR": t.TempDir(), "IDP_HTTP_ADDR": "127.0.0.1:0",
				"IDP_OPS_ADDR": "127.0.0.1:0", "IDP_OPS_PROFILER": fmt.Sprint(profiler)})
			public := "http://" + logged(t, logs, "listening")
			ops := "http://" + logged(t, logs, "operations listener")
			for _, path := range []string{"/healthz", "/readyz"} {
				for _, base := range []string{public, ops} {
					if code, body := get(base, path); code != 200 || body != "ok\n" {
						t.Errorf("%s%s: %d %q", base, path, code, body)
					}
				}
			}
			if code, body := get(ops, "/metrics"); code != 200 || !strings.Contains(body, "go_goroutines") {
				t.Errorf("operations /metrics: %d %.200s", code, body)
			}
			if code, _ := get(public, "/metrics"); code != 404 {
				t.Errorf("the public port serves /metrics: %d", code)
			}
			for path, want := range map[string]string{"/debug/pprof/": "goroutine", "/debug/pprof/cmdline": "idp"} {
				code, body := get(ops, path)
				if profiler && (code != 200 || !strings.Contains(body, want)) {
					t.Errorf("operations %s: %d %.200s", path, code, body)
				}
				if !profiler && code != 404 {
					t.Errorf("the profiler is off, but operations %s answers %d", path, code)
				}
				if code, _ := get(public, path); code != 404 {
					t.Errorf("the public port serves the profiler: %s %d", path, code)
				}
			}
		})
	}
	// Off: IDP_OPS_ADDR empty starts no listener; the profiler needs it.
	logs := runServe(t, map[string]string{"IDP_DATA_DIR": t.TempDir(), "IDP_HTTP_ADDR": "127.0.0.1:0", "IDP_OPS_ADDR": ""})
	logged(t, logs, "listening")
	if strings.Contains(logs.String(), "operations listener") {
		t.Errorf("IDP_OPS_ADDR empty, yet:\n%s", logs)
	}
	if _, _, err := runCmd(t, map[string]string{"IDP_OPS_ADDR": "", "IDP_OPS_PROFILER": "true"}, "serve"); err == nil || !strings.Contains(err.Error(), "IDP_OPS_ADDR") {
		t.Errorf("the profiler without IDP_OPS_ADDR: %v", err)
	}
}

// runServe runs `idp serve` with vars as its environment until the test
// ends, and returns its log.
func runServe(t *testing.T, vars map[string]string) *syncBuffer {
	t.Helper()
	// Not the default operations port, which another server may hold.
	if _, ok := vars["IDP_OPS_ADDR"]; !ok {
		vars["IDP_OPS_ADDR"] = "127.0.0.1:0"
	}
	logs := new(syncBuffer)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, env(vars), logs, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return logs
}

// logged waits for the log line with message msg and returns its addr.
func logged(t *testing.T, logs *syncBuffer, msg string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for line := range strings.Lines(logs.String()) {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == msg && l.Addr != "" {
				return l.Addr
			}
		}
	}
	t.Fatalf("no %q in the log:\n%s", msg, logs)
	return ""
}

func TestConfigErrors(t *testing.T) {
	prod := map[string]string{
		"IDP_DATABASE_URL":          "mysql://idp:pw@db:3306/idp",
		"IDP_ISSUER":                "https://id.example.com",
		"IDP_KEY_ENCRYPTION_KEY":    testKEK,
		"IDP_REFRESH_TOKEN_SECRETS": testRefreshSecret,
		"IDP_PICTURES_URL":          "gs://pictures",
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range prod {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		vars map[string]string
		args []string
		want string // the variable the one-line error names
	}{
		{with("IDP_ISSUER", ""), nil, "IDP_ISSUER"},
		{with("IDP_KEY_ENCRYPTION_KEY", ""), nil, "IDP_KEY_ENCRYPTION_KEY"},
		{with("IDP_REFRESH_TOKEN_SECRETS", ""), nil, "IDP_REFRESH_TOKEN_SECRETS"},
		{with("IDP_REFRESH_TOKEN_SECRETS", "short"), nil, "IDP_REFRESH_TOKEN_SECRETS"},
		{with("IDP_PICTURES_URL", ""), nil, "IDP_PICTURES_URL"},
		{with("IDP_TRUSTED_PROXIES", "10.0.0.0/99"), nil, "IDP_TRUSTED_PROXIES"},
		{with("IDP_RATE_LIMIT_PER_IP", "-1"), nil, "IDP_RATE_LIMIT_PER_IP"},
		{with("IDP_MAIL_FROM", "not an address"), nil, "IDP_MAIL_FROM"},
		{with("IDP_PASSWORD_MIN_LENGTH", "6"), nil, "IDP_PASSWORD_MIN_LENGTH"},
		{with("IDP_ISSUER", "id.example.com"), nil, "IDP_ISSUER"},
		{with("IDP_DATABASE_URL", "oracle://x/y"), nil, "IDP_DATABASE_URL"},
		{with("IDP_ACCESS_TOKEN_TTL", "soon"), nil, "IDP_ACCESS_TOKEN_TTL"},
		{with("IDP_ACCESS_TOKEN_TTL", "-1m"), nil, "IDP_ACCESS_TOKEN_TTL"},
		{with("IDP_REFRESH_REUSE_LEEWAY", "-1s"), nil, "IDP_REFRESH_REUSE_LEEWAY"},
		{with("IDP_KEY_SIZE", "1024"), nil, "IDP_KEY_SIZE"},
		{with("IDP_KEY_PUBLISH_LEAD", "1000h"), nil, "IDP_KEY_PUBLISH_LEAD"},
		{with("IDP_KEY_PUBLISH_LEAD", "90s"), nil, "IDP_KEY_PUBLISH_LEAD"}, // keys.ValidateSchedule: over twice the 1m refresh
		{with("IDP_LOG_LEVEL", "loud"), nil, "IDP_LOG_LEVEL"},
		{with("IDP_SWEEP_INTERVAL", "0s"), nil, "IDP_SWEEP_INTERVAL"},
		{map[string]string{}, []string{"--key-size", "4096"}, "IDP_KEY_SIZE"},
	}
	for _, tc := range tests {
		_, stderr, err := runCmd(t, tc.vars, append([]string{"serve"}, tc.args...)...)
		if err == nil {
			t.Errorf("%v %v: started", tc.vars, tc.args)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
			t.Errorf("error %q does not name %s in one line", msg, tc.want)
		}
		if strings.Contains(err.Error()+stderr, testKEK) || strings.Contains(err.Error()+stderr, "pw@") {
			t.Errorf("the error shows a secret: %q", err)
		}
	}
	// A database that cannot be reached: the error names the variable and
	// the URL without its password (migrate: serve would listen on :8080
	// first, every interface, in production mode).
	_, stderr, err := runCmd(t, with("IDP_DATABASE_URL", "mysql://idp:s3cr3t-pw@127.0.0.1:1/idp"), "migrate")
	if err == nil || !strings.HasPrefix(err.Error(), "IDP_DATABASE_URL: ") || !strings.Contains(err.Error(), "127.0.0.1:1") ||
		strings.Contains(err.Error()+stderr, "s3cr3t") {
		t.Errorf("unreachable database: %v", err)
	}
	// A bad key-encryption key is named too, and never echoed.
	_, _, err = runCmd(t, with("IDP_KEY_ENCRYPTION_KEY", "not-a-key-at-all"), "keys", "list")
	if err == nil || !strings.Contains(err.Error(), "IDP_KEY_ENCRYPTION_KEY") || strings.Contains(err.Error(), "not-a-key") {
		t.Errorf("bad KEK: %v", err)
	}
}

func TestPictureSigningKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	good := write("sa.json", `{"type":"service_account","client_email":"idp@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n"}`)
	for _, c := range []struct {
		file string
		ok   bool
	}{
		{good, true},
		{write("bad.json", `{"client_email":""}`), false},
		{write("text", "not json"), false},
		{filepath.Join(dir, "missing.json"), false},
	} {
		cfg := defaultConfig()
		cfg.PicturesSigningKey = c.file
		opts, err := pictureOptions(cfg)
		if c.ok && (err != nil || len(opts) != 1) {
			t.Errorf("%s: %v", c.file, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "IDP_PICTURES_SIGNING_KEY_FILE")) {
			t.Errorf("%s: %v, want an error naming the variable", c.file, err)
		}
	}
}
