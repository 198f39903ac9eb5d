package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"idp/browsertest"
	"idp/database/databasetest"
)

// TestPasskeyChromium registers a passkey on the account page with
// Chromium's virtual authenticator, signs out, signs in with it through an
// authorization request (amr hwk and user), by autofill on the login field
// too, renames and deletes it and sees the deleted one refused; an
// authenticator without user verification is refused.
func TestPasskeyChromium(t *testing.T) {
	ctx := browsertest.New(t, browsertest.WithTimeout(4*time.Minute))
	s := newPasskeySite(t, databasetest.SQLiteURL(t))
	app := newRelyingParty(t)
	appCB := app.srv.URL + "/callback"
	auth := browsertest.AddAuthenticator(t, ctx, browsertest.Passkey())
	passkeys := func() []map[string]any {
		t.Helper()
		var out []map[string]any
		for _, p := range s.app.db.Ent.Passkey.Query().AllX(context.Background()) {
			out = append(out, map[string]any{"id": p.ID, "name": p.Name, "used": p.LastUsedAt != nil})
		}
		return out
	}
	amrOf := func(q url.Values, p pkce) string {
		t.Helper()
		res := s.redeem("mobile", "", q.Get("code"), appCB, p.verifier)
		if res.status != http.StatusOK {
			t.Fatalf("redeem: %d %s", res.status, res.body)
		}
		amr, _ := json.Marshal(s.idClaims(t, "mobile", res.json(t)["id_token"].(string))["amr"])
		return string(amr)
	}
	signOut := func() {
		t.Helper()
		browsertest.Do(t, ctx, chromedp.Navigate(s.URL+"/oauth2/logout"))
		chromeSubmit(t, ctx, `button[name="decision"][value="logout"]`)
	}

	// The virtual authenticator answers a conditional request at once
	// (there is no autofill UI to wait for): noAutofill hides conditional
	// mediation from the pages until the subtest ends, so that the button
	// or the password is what signs in.
	noAutofill := func(t *testing.T) {
		t.Helper()
		script, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
			Source: "delete PublicKeyCredential.isConditionalMediationAvailable;"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			chromedp.Call(ctx, page.RemoveScriptToEvaluateOnNewDocument, page.RemoveScriptToEvaluateOnNewDocumentParams{Identifier: script.Identifier})
		})
	}

	t.Run("register on the account page", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Navigate(s.URL+"/account"))
		chromeLogin(t, ctx, "ada", signinPassword)
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.ID("passkeys")))
		chromeSubmit(t, ctx, `button[name="action"][value="add-passkey"]`)
		deadline := time.Now().Add(20 * time.Second)
		for len(passkeys()) == 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if ps := passkeys(); len(ps) != 1 {
			t.Fatalf("passkeys after adding one: %v", ps)
		}
		creds, err := browsertest.Credentials(ctx, auth)
		if err != nil || len(creds) != 1 || !creds[0].IsResidentCredential {
			t.Fatalf("authenticator credentials %v, %v", creds, err)
		}
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.CSS(`button[value="rename-passkey"]`)))
	})
	t.Run("sign in by autofill", func(t *testing.T) {
		signOut()
		p := newPKCE()
		browsertest.Do(t, ctx, chromedp.Navigate(s.URL+authorizePath("mobile", appCB, p, nil)))
		// With the browser's UI off, the virtual authenticator answers the
		// conditional request the page's script makes on load, as picking
		// the passkey from the login field's autofill does.
		q := app.receive(t, ctx)
		if amr := amrOf(q, p); amr != `["hwk","user"]` {
			t.Errorf("autofill sign-in amr %s", amr)
		}
	})
	t.Run("sign in with the button", func(t *testing.T) {
		signOut()
		noAutofill(t)
		p := newPKCE()
		browsertest.Do(t, ctx, chromedp.Navigate(s.URL+authorizePath("mobile", appCB, p, nil)))
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.CSS(`button[name="method"][value="passkey"]`)))
		browsertest.Do(t, ctx, chromedp.Click(chromedp.CSS(`button[name="method"][value="passkey"]`)))
		q := app.receive(t, ctx)
		if amr := amrOf(q, p); amr != `["hwk","user"]` {
			t.Errorf("passkey sign-in amr %s", amr)
		}
		if ps := passkeys(); len(ps) != 1 || ps[0]["used"] != true {
			t.Errorf("passkey after use: %v", ps)
		}
	})
	t.Run("a password login says pwd", func(t *testing.T) {
		signOut()
		noAutofill(t)
		p := newPKCE()
		browsertest.Do(t, ctx, chromedp.Navigate(s.URL+authorizePath("mobile", appCB, p, nil)))
		chromeLogin(t, ctx, "ada", signinPassword)
		if amr := amrOf(app.receive(t, ctx), p); amr != `["pwd"]` {
			t.Errorf("password sign-in amr %s", amr)
		}
	})
	t.Run("rename and delete, then refused", func(t *testing.T) {
		browsertest.Do(t, ctx, chromedp.Navigate(s.URL+"/account"))
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.ID("passkeys")))
		sel := `#passkeys input[name="name"]`
		browsertest.Get(t, ctx, chromedp.Evaluate[bool](`(document.querySelector('`+sel+`').value = "", true)`))
		browsertest.Do(t, ctx, chromedp.SendKeys(chromedp.CSS(sel), "My laptop"))
		chromeSubmit(t, ctx, `button[name="action"][value="rename-passkey"]`)
		if ps := passkeys(); len(ps) != 1 || ps[0]["name"] != "My laptop" {
			t.Errorf("after renaming: %v", ps)
		}
		chromeSubmit(t, ctx, `button[name="action"][value="delete-passkey"]`)
		if ps := passkeys(); len(ps) != 0 {
			t.Errorf("after deleting: %v", ps)
		}
		signOut()
		noAutofill(t)
		// The authenticator still holds the credential; the server no
		// longer knows it.
		browsertest.Do(t, ctx, chromedp.Navigate(s.URL+authorizePath("mobile", appCB, newPKCE(), nil)))
		browsertest.Do(t, ctx, chromedp.WaitVisible(chromedp.CSS(`button[name="method"][value="passkey"]`)))
		chromeSubmit(t, ctx, `button[name="method"][value="passkey"]`)
		msg := browsertest.Get(t, ctx, chromedp.Text(chromedp.CSS(`[role="alert"]`)))
		if !strings.Contains(msg, "passkey could not sign you in") {
			t.Errorf("a deleted passkey: alert %q", msg)
		}
	})
	t.Run("an authenticator without user verification", func(t *testing.T) {
		other := browsertest.NewUser(t, ctx)
		a := browsertest.Passkey()
		a.UserVerification, a.UserVerified = false, false
		browsertest.AddAuthenticator(t, other, a)
		browsertest.Do(t, other, chromedp.Navigate(s.URL+"/account"))
		chromeLogin(t, other, "ada", signinPassword)
		browsertest.Do(t, other, chromedp.WaitVisible(chromedp.ID("passkeys")))
		browsertest.Do(t, other, chromedp.Click(chromedp.CSS(`button[name="action"][value="add-passkey"]`)))
		browsertest.Do(t, other, chromedp.WaitVisible(chromedp.ID("passkey-add-error")))
		if ps := passkeys(); len(ps) != 0 {
			t.Errorf("a passkey without user verification was stored: %v", ps)
		}
	})
}
