package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/ory/fosite"

	"idp/account"
	"idp/database"
	"idp/database/databasetest"
	"idp/ent/refreshchain"
	"idp/fake"
	"idp/keys"
	"idp/oauth/token"
	"idp/storage"
)

// testUsers is the Users of the refresh tests: the users table, and one
// password for everyone.
type testUsers struct{ db *storage.Store }

const testUserPassword = "correct horse battery staple"

func (u testUsers) Authenticate(ctx context.Context, login, password, _ string) (*storage.User, error) {
	if password != testUserPassword {
		return nil, account.ErrInvalidCredentials
	}
	x, err := u.db.UserByUsername(ctx, strings.ToLower(login))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, account.ErrInvalidCredentials
	}
	return x, err
}

func (u testUsers) Get(ctx context.Context, id int64) (*storage.User, error) {
	return u.db.UserByID(ctx, id)
}

// refreshEnv is a token service on a test database with the public clients
// mobile and other, the user ada, and a clock of its own.
type refreshEnv struct {
	t     *testing.T
	db    *database.DB
	srv   *Server
	h     http.Handler
	clock *fake.Clock
}

func newRefreshEnv(t *testing.T, db *database.DB, leeway time.Duration) *refreshEnv {
	t.Helper()
	ctx := context.Background()
	m, err := keys.NewManager(storage.New(db), bytes.Repeat([]byte{42}, 32), keys.Options{RetainRetired: time.Hour, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Load(ctx); err != nil {
		t.Fatal(err)
	}
	store := storage.New(db)
	clients := NewClients(store, time.Minute)
	for _, id := range []string{"mobile", "other"} {
		if _, err := clients.Create(ctx, NewClient{ID: id, Public: true, GrantTypes: []string{"password", "refresh_token"},
			Scopes: []string{"openid", "profile", "email", "offline_access"}}); err != nil {
			t.Fatal(err)
		}
	}
	db.Ent.User.Create().SetID(7).SetUsername("ada").SetEmail("ada@example.com").SetPasswordHash("h").
		SetFirstName("Ada").SetLastName("Lovelace").SetPasswordChangedAt(time.Now().Add(-time.Hour)).ExecX(ctx)
	clock := fake.NewClock(time.Now())
	srv, err := New(Config{
		Issuer:              "http://idp.test",
		AccessTokenTTL:      15 * time.Minute,
		RefreshTokenTTL:     24 * time.Hour,
		IDTokenTTL:          time.Hour,
		RefreshTokenSecrets: [][]byte{[]byte("refresh-secret-0123456789abcdef-0123456789")},
		RefreshReuseLeeway:  leeway,
		Now:                 clock.Now,
		Logger:              slog.New(slog.DiscardHandler),
	}, store, m, testUsers{store}, clients)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	srv.Mount(r)
	return &refreshEnv{t: t, db: db, srv: srv, h: r, clock: clock}
}

// use makes t the test that e's helpers report to, until the returned
// function is called.
func (e *refreshEnv) use(t *testing.T) func() {
	prev := e.t
	e.t = t
	return func() { e.t = prev }
}

// token posts a token request and returns the status and JSON answer.
func (e *refreshEnv) token(form url.Values) (int, map[string]any) {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	var m map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
		e.t.Fatalf("status %d, body %q: %v", rec.Code, rec.Body, err)
	}
	return rec.Code, m
}

// login is a password grant of ada for mobile with every scope.
func (e *refreshEnv) login() map[string]any {
	e.t.Helper()
	status, m := e.token(url.Values{"grant_type": {"password"}, "client_id": {"mobile"}, "username": {"ada"},
		"password": {testUserPassword}, "scope": {"openid profile email offline_access"}})
	if status != 200 {
		e.t.Fatalf("login: %d %v", status, m)
	}
	return m
}

func (e *refreshEnv) refresh(client, token string) (int, map[string]any) {
	e.t.Helper()
	return e.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {token}})
}

// mustRefresh refreshes as mobile and returns the answer.
func (e *refreshEnv) mustRefresh(token string) map[string]any {
	e.t.Helper()
	status, m := e.refresh("mobile", token)
	if status != 200 {
		e.t.Fatalf("refresh: %d %v", status, m)
	}
	return m
}

// refused asserts that a refresh with token fails with invalid_grant.
func (e *refreshEnv) refused(what, client, token string) {
	e.t.Helper()
	if status, m := e.refresh(client, token); status != 400 || m["error"] != "invalid_grant" {
		e.t.Errorf("%s: %d %v, want 400 invalid_grant", what, status, m)
	}
}

// userinfo is the status of /userinfo with an access token.
func (e *refreshEnv) userinfo(access any) int {
	e.t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+access.(string))
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec.Code
}

// TestRefreshReuseLeeway: within the leeway after a refresh token P was
// rotated to S, the same client presenting P again gets S again with a new
// access token and ID token; the first answer's access token keeps working
// and the chain goes on. Past the leeway, by another client, or for a token
// older than P, it is reuse: the whole chain is revoked. On a fake clock,
// on both engines.
func TestRefreshReuseLeeway(t *testing.T) {
	const leeway = 5 * time.Second
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		e := newRefreshEnv(t, db, leeway)
		other := e.login() // another login of the same user

		t.Run("just inside", func(t *testing.T) {
			defer e.use(t)()
			p := e.login()["refresh_token"].(string)
			first := e.mustRefresh(p)
			e.clock.Advance(leeway)
			again := e.mustRefresh(p)
			if again["refresh_token"] != first["refresh_token"] {
				t.Errorf("the retry got refresh token %v, want the first answer's %v", again["refresh_token"], first["refresh_token"])
			}
			if again["access_token"] == first["access_token"] || again["id_token"] == nil || again["scope"] != first["scope"] {
				t.Errorf("the retry's answer: %v", again)
			}
			for name, at := range map[string]any{"first": first["access_token"], "retry": again["access_token"]} {
				if status := e.userinfo(at); status != 200 {
					t.Errorf("the %s answer's access token at /userinfo: %d", name, status)
				}
			}
			// The chain goes on from S.
			next := e.mustRefresh(first["refresh_token"].(string))
			if e.userinfo(next["access_token"]) != 200 {
				t.Error("the chain's next access token is refused")
			}
		})

		t.Run("just outside", func(t *testing.T) {
			defer e.use(t)()
			login := e.login()
			p := login["refresh_token"].(string)
			first := e.mustRefresh(p)
			e.clock.Advance(leeway + time.Millisecond)
			e.refused("P past the leeway", "mobile", p)
			e.refused("S after P's reuse", "mobile", first["refresh_token"].(string))
			for name, at := range map[string]any{"login": login["access_token"], "refresh": first["access_token"]} {
				if status := e.userinfo(at); status != 401 {
					t.Errorf("the %s access token of a revoked chain: %d", name, status)
				}
			}
		})

		t.Run("another client", func(t *testing.T) {
			defer e.use(t)()
			p := e.login()["refresh_token"].(string)
			// Unused, it is refused to another client but not revoked.
			e.refused("an unused token by another client", "other", p)
			first := e.mustRefresh(p)
			// Used, it is reuse whoever presents it.
			e.refused("P by another client within the leeway", "other", p)
			e.refused("S after P's reuse by another client", "mobile", first["refresh_token"].(string))
		})

		t.Run("older token", func(t *testing.T) {
			defer e.use(t)()
			p := e.login()["refresh_token"].(string)
			s := e.mustRefresh(p)["refresh_token"].(string)
			u := e.mustRefresh(s)["refresh_token"].(string)
			// P's successor S was itself replaced: P is no retry.
			e.refused("P after S was rotated", "mobile", p)
			e.refused("the newest token after an older one's reuse", "mobile", u)
		})

		t.Run("revoked token", func(t *testing.T) {
			defer e.use(t)()
			p := e.login()["refresh_token"].(string)
			if err := e.srv.store.RevokeRefreshToken(context.Background(), grantOf(t, e, p)); err != nil {
				t.Fatal(err)
			}
			e.refused("a revoked token", "mobile", p)
		})

		if e.userinfo(other["access_token"]) != 200 {
			t.Error("revoking chains ended another login")
		}
		e.mustRefresh(other["refresh_token"].(string))
	})
}

// grantOf is the request id of the refresh token's chain.
func grantOf(t *testing.T, e *refreshEnv, token string) string {
	t.Helper()
	ref, ok := e.srv.tokens.ParseRefresh(context.Background(), token)
	if !ok {
		t.Fatalf("not a refresh token: %q", token)
	}
	return e.db.Ent.RefreshChain.GetX(context.Background(), ref.Chain).RequestID
}

// TestRefreshLeewayOff: with no leeway a used token is reuse at once, as it
// was before the leeway existed.
func TestRefreshLeewayOff(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		e := newRefreshEnv(t, db, 0)
		p := e.login()["refresh_token"].(string)
		first := e.mustRefresh(p)
		e.refused("P again at once", "mobile", p)
		e.refused("S after P's reuse", "mobile", first["refresh_token"].(string))
		if e.userinfo(first["access_token"]) != 401 {
			t.Error("the revoked chain's access token still works")
		}
	})
}

// TestConcurrentRefreshLeeway: refreshes with one token at once all
// succeed with the same new refresh token, which alone continues the
// chain; each access token is on record. Without a leeway exactly one
// succeeds and the others are told to retry.
func TestConcurrentRefreshLeeway(t *testing.T) {
	for _, leeway := range []time.Duration{5 * time.Second, 0} {
		t.Run("leeway "+leeway.String(), func(t *testing.T) {
			databasetest.Each(t, func(t *testing.T, db *database.DB) {
				e := newRefreshEnv(t, db, leeway)
				p := e.login()["refresh_token"].(string)
				const n = 8
				type answer struct {
					status int
					m      map[string]any
				}
				answers := make(chan answer, n)
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						status, m := e.refresh("mobile", p)
						answers <- answer{status, m}
					})
				}
				wg.Wait()
				close(answers)
				var wins []map[string]any
				for a := range answers {
					switch {
					case a.status == 200:
						wins = append(wins, a.m)
					case a.status == 400 && leeway == 0:
					default:
						t.Errorf("status %d: %v", a.status, a.m)
					}
				}
				if leeway == 0 {
					if len(wins) != 1 {
						t.Errorf("%d refreshes succeeded without a leeway, want 1", len(wins))
					}
					return
				}
				if len(wins) != n {
					t.Fatalf("%d of %d concurrent refreshes succeeded", len(wins), n)
				}
				for _, w := range wins {
					if w["refresh_token"] != wins[0]["refresh_token"] {
						t.Errorf("refresh tokens %v and %v", w["refresh_token"], wins[0]["refresh_token"])
					}
					if e.userinfo(w["access_token"]) != 200 {
						t.Error("a concurrent refresh's access token is not on record")
					}
				}
				grant := grantOf(t, e, p)
				chains := e.db.Ent.RefreshChain.Query().Where(refreshchain.RequestID(grant)).AllX(context.Background())
				if len(chains) != 1 || chains[0].Generation != 1 {
					t.Errorf("chain rows %+v, want one, rotated once (the login's token and one successor)", chains)
				}
				e.mustRefresh(wins[0]["refresh_token"].(string))
			})
		})
	}
}

// TestRefreshTokenSpelling: a refresh token is accepted only in the one
// spelling it was issued in. Base64 leaves the low two bits of a 32-byte
// value's last character unused, so each part has three other spellings
// that a lenient decoder reads as the same bytes.
func TestRefreshTokenSpelling(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		e := newRefreshEnv(t, db, 0)
		token := e.login()["refresh_token"].(string)
		for _, variant := range fake.Respellings(t, token) {
			if _, ok := e.srv.tokens.ParseRefreshToken(context.Background(), variant); ok {
				t.Errorf("%q is accepted for %q", variant, token)
			}
			e.refused("a respelled token", "mobile", variant)
		}
		e.mustRefresh(token)
	})
}

// TestRefreshChecks: what fosite's refresh handler checked, idp's checks
// too: the client may use the grant, the token is unexpired, offline_access
// was granted, the scope asked for is within the grant, and the user exists.
func TestRefreshChecks(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		e := newRefreshEnv(t, db, 0)
		ctx := context.Background()
		if _, err := e.srv.clients.Create(ctx, NewClient{ID: "nobody-refreshes", Public: true, GrantTypes: []string{"password"},
			Scopes: []string{"openid", "offline_access"}}); err != nil {
			t.Fatal(err)
		}
		rt := e.login()["refresh_token"].(string)
		if status, m := e.refresh("nobody-refreshes", rt); status != 400 || m["error"] != "unauthorized_client" {
			t.Errorf("a client without the grant: %d %v", status, m)
		}
		if status, m := e.token(url.Values{"grant_type": {"refresh_token"}, "client_id": {"mobile"}, "refresh_token": {rt},
			"scope": {"openid users:stats"}}); status != 400 || m["error"] != "invalid_scope" {
			t.Errorf("a wider scope: %d %v", status, m)
		}
		e.refused("no token", "mobile", "")
		e.refused("garbage", "mobile", "abc.def")

		// The refresh token's lifetime.
		expiring := e.login()["refresh_token"].(string)
		// (fosite's password grant dates it by the real clock.)
		e.clock.Advance(24*time.Hour + time.Minute)
		e.refused("an expired token", "mobile", expiring)
		e.clock.Advance(-24*time.Hour - time.Minute)

		// A token stored as the password grant stores one.
		stored := func(grant, subject string, scopes ...string) string {
			t.Helper()
			sess := &token.Session{Subject: subject}
			sess.SetExpiresAt(fosite.RefreshToken, e.clock.Now().Add(time.Hour))
			client, _ := e.srv.clients.Get(ctx, "mobile")
			req := &fosite.Request{ID: grant, RequestedAt: e.clock.Now(), Client: client, Session: sess, GrantedScope: scopes}
			rt, sig, err := e.srv.tokens.GenerateRefreshToken(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.srv.store.CreateRefreshTokenSession(ctx, sig, "", req); err != nil {
				t.Fatal(err)
			}
			return rt
		}
		if status, m := e.refresh("mobile", stored("g-offline", "7", "openid", "offline_access")); status != 200 {
			t.Errorf("a stored grant: %d %v", status, m)
		}
		db.Ent.User.Create().SetID(8).SetUsername("gone").SetEmail("gone@example.com").SetPasswordHash("h").
			SetFirstName("G").SetLastName("G").ExecX(ctx)
		goneToken := stored("g-gone", "8", "openid", "offline_access")
		db.Ent.User.DeleteOneID(8).ExecX(ctx)
		e.refused("a token of a user that is gone", "mobile", goneToken)
		if status, m := e.refresh("mobile", stored("g-no-offline", "7", "openid")); status != 403 || m["error"] != "scope_not_granted" {
			t.Errorf("a grant without offline_access: %d %v", status, m)
		}
	})
}

// TestRefreshChainRows: however often a login is refreshed, it keeps one
// chain row and writes no access token rows; the previous refresh's access
// token stays on record with the newest's, so requests in flight keep
// working; and a token from far back in the chain is still recognised:
// presenting it revokes the chain. On every engine.
func TestRefreshChainRows(t *testing.T) {
	const rotations = 50
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		e := newRefreshEnv(t, db, 5*time.Second)
		ctx := context.Background()
		login := e.login()
		rows := func() (chains, access int) {
			t.Helper()
			return db.Ent.RefreshChain.Query().CountX(ctx), db.Ent.AccessToken.Query().CountX(ctx)
		}
		chains0, access0 := rows()
		if chains0 != 1 {
			t.Fatalf("a login wrote %d chain rows, want 1", chains0)
		}
		tokens := []string{login["refresh_token"].(string)}
		var prevAccess any
		for i := range rotations {
			e.clock.Advance(time.Minute)
			m := e.mustRefresh(tokens[len(tokens)-1])
			tokens = append(tokens, m["refresh_token"].(string))
			if chains, access := rows(); chains != chains0 || access != access0 {
				t.Fatalf("after %d rotations: %d chain rows, %d access token rows; want %d, %d", i+1, chains, access, chains0, access0)
			}
			if prevAccess != nil && e.userinfo(prevAccess) != 200 {
				t.Fatalf("after %d rotations the previous refresh's access token is refused", i+1)
			}
			if e.userinfo(m["access_token"]) != 200 {
				t.Fatalf("after %d rotations the new access token is refused", i+1)
			}
			prevAccess = m["access_token"]
		}
		chain := db.Ent.RefreshChain.Query().OnlyX(ctx)
		if chain.Generation != rotations || !chain.Active {
			t.Errorf("chain at generation %d (active %v), want %d", chain.Generation, chain.Active, rotations)
		}

		e.clock.Advance(time.Minute)
		e.refused("a token 47 rotations back", "mobile", tokens[3])
		e.refused("the newest token after an old one's reuse", "mobile", tokens[len(tokens)-1])
		if e.userinfo(prevAccess) != 401 {
			t.Error("the revoked chain's access token still works")
		}
		if chains, _ := rows(); chains != chains0 {
			t.Errorf("%d chain rows after the revocation, want %d", chains, chains0)
		}
	})
}
