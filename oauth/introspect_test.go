package oauth

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"idp/database"
	"idp/database/databasetest"
)

// TestIntrospectionStorageFailure: an unknown, malformed or revoked token is
// {"active":false}; a token whose record cannot be read because the
// database fails is neither active nor inactive: it is logged and answered
// 503 temporarily_unavailable with Retry-After, so that a resource server
// does not take a valid token for a revoked one.
func TestIntrospectionStorageFailure(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		e := newRefreshEnv(t, db, 0)
		ctx := context.Background()
		secret, err := e.srv.clients.Create(ctx, NewClient{ID: "rs", GrantTypes: []string{"client_credentials"}})
		if err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		e.srv.log = slog.New(slog.NewTextHandler(&logs, nil))
		introspect := func(token string) (int, http.Header, map[string]any) {
			t.Helper()
			req := httptest.NewRequest(http.MethodPost, "/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("rs", secret)
			rec := httptest.NewRecorder()
			e.h.ServeHTTP(rec, req)
			var m map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
				t.Fatalf("status %d, body %q: %v", rec.Code, rec.Body, err)
			}
			return rec.Code, rec.Header(), m
		}

		tokens := e.login()
		access, refresh := tokens["access_token"].(string), tokens["refresh_token"].(string)
		if status, _, m := introspect(access); status != 200 || m["active"] != true {
			t.Fatalf("a fresh access token: %d %v", status, m)
		}
		// A forged token with the signature of a real one: its record is
		// found, the token does not verify.
		head, _, _ := strings.Cut(access, ".")
		forged := head + ".eyJzdWIiOiI3In0." + access[strings.LastIndex(access, ".")+1:]
		revoked := e.login()["refresh_token"].(string)
		if err := e.srv.store.RevokeGrant(ctx, grantOf(t, e, revoked)); err != nil {
			t.Fatal(err)
		}
		for name, token := range map[string]string{"unknown": "no-such-token", "forged": forged, "revoked": revoked} {
			if status, _, m := introspect(token); status != 200 || m["active"] != false || len(m) != 1 {
				t.Errorf("%s token: %d %v, want 200 {\"active\":false}", name, status, m)
			}
		}
		if logs.Len() != 0 {
			t.Errorf("inactive tokens logged errors: %s", logs.String())
		}

		// The database fails (the client is cached, so authentication
		// still passes and the token lookup is what fails).
		db.Ent.Close()
		for name, token := range map[string]string{"access": access, "refresh": refresh} {
			logs.Reset()
			status, h, m := introspect(token)
			if status != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" || h.Get("Retry-After") == "" {
				t.Errorf("%s token, database down: %d %v (Retry-After %q), want 503 temporarily_unavailable with Retry-After",
					name, status, m, h.Get("Retry-After"))
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "closed") {
				t.Errorf("%s token, database down: the failure was not logged with its cause: %q", name, logs.String())
			}
		}

		// Nor is the client's own lookup a wrong secret.
		e.srv.clients.forget("rs")
		logs.Reset()
		if status, _, m := introspect(access); status != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" || logs.Len() == 0 {
			t.Errorf("client lookup, database down: %d %v, want 503 temporarily_unavailable, logged", status, m)
		}
	})
}
