package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"time"

	"idp/nativeapp"
)

// cmdLogin signs in the way a native app does (RFC 8252), against the
// server of this configuration or --issuer: a developer's check of the
// browser sign-in, and a way to get tokens for curl.
func cmdLogin(ctx context.Context, args []string, e cmdEnv) error {
	var (
		clientID, scope string
		timeout         time.Duration
		noBrowser       bool
	)
	cfg, _, err := setup(command{
		name: "login", args: `[--issuer URL] [--client-id ID] [--scope "S1 S2"] [--timeout D] [--no-browser] [flags]`,
		what: "Sign in as a native app does (RFC 8252): listen on 127.0.0.1 at a random port, open the\n" +
			"authorization URL (PKCE, state, nonce) in the browser, wait for the redirect, redeem the\n" +
			"code, verify the ID token and print the token response on stdout. The server is\n" +
			"--issuer (IDP_ISSUER, the configured issuer by default); the client must be registered\n" +
			"with the redirect URI http://127.0.0.1/callback, as the embedded default's mobile is.",
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&clientID, "client-id", "mobile", "the public client to sign in as")
			fs.StringVar(&scope, "scope", "openid profile email offline_access", "space-separated scopes to ask for")
			fs.DurationVar(&timeout, "timeout", 5*time.Minute, "how long the sign-in may take, the browser part included")
			fs.BoolVar(&noBrowser, "no-browser", false, "only print the URL; open it yourself")
		},
	}, args, e)
	if err != nil {
		return err
	}
	lc := nativeapp.Config{
		Issuer:   cfg.Issuer,
		ClientID: clientID,
		Scopes:   strings.Fields(scope),
		Timeout:  timeout,
		Open:     nativeapp.OpenBrowser,
		Prompt:   e.stderr,
	}
	if noBrowser {
		lc.Open = nil
	}
	res, err := nativeapp.Login(ctx, lc)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	// The tokens go to stdout only, as one JSON object for jq.
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(res.Token); err != nil {
		return err
	}
	if idt := res.IDToken; idt != nil {
		fmt.Fprintf(e.stderr, "Signed in: the ID token of %s for subject %s is valid until %s.\n",
			idt.Issuer, idt.Subject, idt.Expiry.UTC().Format(time.RFC3339))
	}
	return nil
}
