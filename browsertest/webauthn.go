package browsertest

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
)

// Authenticator describes a virtual WebAuthn authenticator. The zero value
// is not useful; start from Passkey().
type Authenticator struct {
	Protocol  webauthn.AuthenticatorProtocol
	Transport webauthn.AuthenticatorTransport
	// ResidentKey makes credentials discoverable (passkeys).
	ResidentKey bool
	// UserVerification says the authenticator can verify the user.
	UserVerification bool
	// UserVerified is the outcome of each verification.
	UserVerified bool
	// Presence answers user-presence tests at once; without it they hang.
	Presence bool
	// BackupEligible sets the BE flag of new credentials (a synced passkey).
	BackupEligible bool
}

// Passkey is a platform authenticator as a phone or laptop has: CTAP2,
// internal, discoverable credentials, user verification that succeeds.
func Passkey() Authenticator {
	return Authenticator{
		Protocol:         webauthn.AuthenticatorProtocolCtap2,
		Transport:        webauthn.AuthenticatorTransportInternal,
		ResidentKey:      true,
		UserVerification: true,
		UserVerified:     true,
		Presence:         true,
	}
}

// AddAuthenticator enables the WebAuthn domain on the context's tab (with
// the browser's own UI off) and adds a virtual authenticator, which then
// answers navigator.credentials calls of that tab. It is removed when the
// test ends, unless RemoveAuthenticator removed it before.
func AddAuthenticator(t testing.TB, ctx context.Context, a Authenticator) webauthn.AuthenticatorID {
	t.Helper()
	id, err := addAuthenticator(ctx, a)
	if err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	t.Cleanup(func() {
		// The browser may be gone already: the cleanup only tidies up.
		_, _ = chromedp.Call(ctx, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: id})
	})
	return id
}

func addAuthenticator(ctx context.Context, a Authenticator) (webauthn.AuthenticatorID, error) {
	off := false
	if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{EnableUI: &off}); err != nil {
		return "", fmt.Errorf("enabling WebAuthn: %w", err)
	}
	res, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{
		Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    a.Protocol,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   a.Transport,
			HasResidentKey:              a.ResidentKey,
			HasUserVerification:         a.UserVerification,
			IsUserVerified:              a.UserVerified,
			AutomaticPresenceSimulation: a.Presence,
			DefaultBackupEligibility:    a.BackupEligible,
		},
	})
	if err != nil {
		return "", fmt.Errorf("adding a virtual authenticator: %w", err)
	}
	return res.AuthenticatorID, nil
}

// RemoveAuthenticator removes a virtual authenticator with its credentials.
func RemoveAuthenticator(ctx context.Context, id webauthn.AuthenticatorID) error {
	_, err := chromedp.Call(ctx, webauthn.RemoveVirtualAuthenticator, webauthn.RemoveVirtualAuthenticatorParams{AuthenticatorID: id})
	return err
}

// Credentials returns the credentials the authenticator holds.
func Credentials(ctx context.Context, id webauthn.AuthenticatorID) ([]*webauthn.Credential, error) {
	res, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: id})
	if err != nil {
		return nil, err
	}
	return res.Credentials, nil
}
