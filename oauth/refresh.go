package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"idp/oauth/fositestore"
	"idp/oauth/token"
)

// refreshHandler is the refresh_token grant (RFC 6749 §6, RFC 6819
// §5.2.2.3 rotation), in place of fosite's: it reads the presented token
// with its chain and its user in one query, decides, and writes in one
// statement, without a transaction. A login's chain is one row however
// often it is refreshed (fositestore.Chain).
//
// Each refresh replaces the presented token P by a successor S. S is not
// random but derived from P (see token.Strategy.Successor), so that every rotation of P
// yields the same S: an app that lost the answer to its refresh and presents
// P again within RefreshReuseLeeway of the rotation gets S again, with a
// fresh access token, instead of losing its login; two concurrent refreshes
// with P both get S. Otherwise a token presented again is reuse, a sign that
// it was copied, and ends its whole grant.
type refreshHandler struct{ s *Server }

var _ fosite.TokenEndpointHandler = refreshHandler{}

func (h refreshHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(GrantRefreshToken)
}

func (h refreshHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool { return false }

// HandleTokenEndpointRequest checks what needs no storage; the rest is
// checked where the tokens are issued, after the one read.
func (h refreshHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	if !r.GetClient().GetGrantTypes().Has(GrantRefreshToken) {
		return fosite.ErrUnauthorizedClient.WithHint("The client may not use the refresh_token grant.")
	}
	return nil
}

var (
	errRefreshInvalid = fosite.ErrInvalidGrant.WithHint("The refresh token is malformed or not valid.")
	errRefreshRevoked = fosite.ErrInvalidGrant.WithHint("The refresh token was revoked.")
	errRefreshUsed    = fosite.ErrInvalidGrant.WithHint("The refresh token was already used.")
)

func (h refreshHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	s := h.s
	presented, ok := s.tokens.ParseRefresh(ctx, r.GetRequestForm().Get("refresh_token"))
	if !ok {
		return errRefreshInvalid
	}
	p, err := s.store.Chain(ctx, presented.Chain)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	if p == nil {
		return errRefreshInvalid
	}
	var stored fositestore.StoredRequest
	sess := new(token.Session)
	if err := json.Unmarshal(p.Request, &stored); err != nil {
		return fosite.ErrServerError.WithWrap(fmt.Errorf("oauth: stored request: %w", err))
	}
	if err := json.Unmarshal(stored.Session, sess); err != nil {
		return fosite.ErrServerError.WithWrap(fmt.Errorf("oauth: stored session: %w", err))
	}
	now := s.now()
	next, nextRef := s.tokens.Successor(presented)
	retry := false
	switch {
	case !p.Active:
		// Revoked with its whole grant: there is nothing left to end.
		return errRefreshRevoked
	case p.Is(presented):
	case p.Replaced(presented) && h.withinLeeway(p, nextRef, stored.ClientID, r.GetClient().GetID(), now):
		retry = true
	default:
		// Reuse: a token the newest replaced, past the leeway or by
		// another client (whichever client presents it, as fosite's
		// handler, which looked for reuse first), or any older one.
		return h.reuse(ctx, stored.ID, sess.Subject, r.GetClient().GetID())
	}
	if exp := sess.GetExpiresAt(fosite.RefreshToken); !exp.IsZero() && !now.Before(exp) {
		return fosite.ErrInvalidGrant.WithHint("The refresh token expired.")
	}
	if !slices.Contains(stored.GrantedScope, ScopeOfflineAccess) {
		return fosite.ErrScopeNotGranted.WithHint("The grant lacks the scope offline_access, which the refresh_token grant needs.")
	}
	// RFC 6749 §6: the refresh token must have been issued to the
	// authenticated client. Refused without revoking: the token is unused,
	// and whoever holds it may be its owner who mistyped a client id.
	if stored.ClientID != r.GetClient().GetID() {
		return fosite.ErrInvalidGrant.WithHint("The refresh token was issued to another client.")
	}
	id, isUser := token.UserID(sess.Subject)
	if !isUser || p.User == nil || p.User.ID != id {
		return fosite.ErrInvalidGrant.WithHint("The refresh token's user no longer exists.")
	}

	// The new exchange continues the grant: its id, session, and what was
	// requested and granted, provided the client is still registered for it.
	r.SetID(stored.ID)
	r.SetSession(sess)
	r.SetRequestedScopes(stored.RequestedScope)
	r.SetRequestedAudience(stored.RequestedAudience)
	for _, scope := range stored.GrantedScope {
		if !fosite.ExactScopeStrategy(r.GetClient().GetScopes(), scope) {
			return fosite.ErrInvalidScope.WithHintf("The client is no longer registered for the scope %q.", scope)
		}
		r.GrantScope(scope)
	}
	if err := fosite.ExactAudienceMatchingStrategy(r.GetClient().GetAudience(), stored.GrantedAudience); err != nil {
		return err
	}
	for _, aud := range stored.GrantedAudience {
		r.GrantAudience(aud)
	}
	narrowed, err := narrowScope(r, sess, r.GetRequestForm().Get("scope"))
	if err != nil {
		return err
	}
	atTTL := fosite.GetEffectiveLifespan(r.GetClient(), fosite.GrantTypeRefreshToken, fosite.AccessToken, s.cfg.AccessTokenTTL)
	sess.SetExpiresAt(fosite.AccessToken, now.UTC().Add(atTTL).Round(time.Second))
	rtTTL := fosite.GetEffectiveLifespan(r.GetClient(), fosite.GrantTypeRefreshToken, fosite.RefreshToken, s.cfg.RefreshTokenTTL)
	if rtTTL > -1 {
		sess.SetExpiresAt(fosite.RefreshToken, now.UTC().Add(rtTTL).Round(time.Second))
	}
	storeReq := r.Sanitize(nil)
	data, err := fositestore.EncodeRequest(storeReq)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}

	var access string
	if !retry {
		// The usual case: the access token is recorded on the chain's
		// row, which its jti names.
		var accessSig string
		access, accessSig, err = s.tokens.AccessToken(r, token.ChainJTI(presented.Chain))
		if err != nil {
			return fosite.ErrServerError.WithWrap(err)
		}
		err = s.store.Rotate(ctx, presented, nextRef, accessSig, storeReq, data)
		switch {
		case errors.Is(err, fositestore.ErrRevoked), errors.Is(err, fosite.ErrSerializationFailure):
			// A concurrent refresh with the same token wrote first (or
			// MySQL chose this update as a deadlock's victim), or the
			// chain was revoked or its user erased meanwhile.
			c, err := s.store.Chain(ctx, presented.Chain)
			if err != nil {
				return fosite.ErrServerError.WithWrap(err)
			}
			switch {
			case c == nil || !c.Active || c.User == nil:
				return errRefreshRevoked
			case !c.Replaced(presented) || !h.withinLeeway(c, nextRef, stored.ClientID, r.GetClient().GetID(), now):
				// Rotated further meanwhile, or not at all (this update
				// was a deadlock's victim): the client may try again.
				return fosite.ErrInvalidRequest.WithHint("The refresh token was used by a concurrent request; retry the request.")
			}
			retry = true
		case err != nil:
			return fosite.ErrServerError.WithWrap(err)
		}
	}
	if retry {
		// The successor is the chain's newest and records the first
		// answer's access token, which keeps working; this one gets a
		// row of its own.
		var accessSig string
		access, accessSig, err = s.tokens.AccessToken(r, token.RandomID())
		if err != nil {
			return fosite.ErrServerError.WithWrap(err)
		}
		err = s.store.RecordReissue(ctx, nextRef, accessSig, storeReq, data)
		switch {
		case errors.Is(err, fositestore.ErrRevoked):
			// The successor was revoked or rotated in turn since it was
			// read.
			return errRefreshUsed
		case errors.Is(err, fosite.ErrSerializationFailure):
			return fosite.ErrInvalidRequest.WithHint("The refresh token was used by a concurrent request; retry the request.")
		case err != nil:
			return fosite.ErrServerError.WithWrap(err)
		}
	}

	resp.SetAccessToken(access)
	resp.SetTokenType("bearer")
	resp.SetExpiresIn(sess.GetExpiresAt(fosite.AccessToken).Sub(now))
	scopes := token.AccessScope(r)
	if narrowed != nil {
		resp.SetScopes(narrowed)
	} else {
		resp.SetScopes(r.GetGrantedScopes())
	}
	resp.SetExtra("refresh_token", next)
	if slices.Contains(scopes, ScopeOpenID) {
		idToken, err := s.idToken(ctx, r, scopes, access, p.User)
		if err != nil {
			return fosite.ErrServerError.WithWrap(err)
		}
		resp.SetExtra("id_token", idToken)
	}
	return nil
}

// narrowScope applies the optional scope parameter of a refresh request
// (RFC 6749 §6): the new access token gets only those scopes, each of which
// must have been granted; the new refresh token keeps the full grant.
func narrowScope(ar fosite.AccessRequester, sess *token.Session, raw string) ([]string, error) {
	sess.AccessScope = nil
	requested := fosite.RemoveEmpty(strings.Split(raw, " "))
	if len(requested) == 0 {
		return nil, nil
	}
	granted := ar.GetGrantedScopes()
	for _, scope := range requested {
		if !granted.Has(scope) {
			return nil, fosite.ErrInvalidScope.WithHintf("The scope %q was not granted to this refresh token.", scope)
		}
	}
	requested = slices.Compact(requested)
	sess.AccessScope = requested
	return requested, nil
}

// withinLeeway reports whether presenting again the token that the newest
// of chain c replaced is a retry that gets the newest again: the newest is
// the successor this handler derives (want), was written no more than the
// leeway ago, and the token is presented by the client it was issued to.
func (h refreshHandler) withinLeeway(c *fositestore.Chain, want token.RefreshRef, issuedTo, presentedBy string, now time.Time) bool {
	leeway := h.s.cfg.RefreshReuseLeeway
	return leeway > 0 && c.Is(want) && issuedTo == presentedBy &&
		now.Truncate(time.Microsecond).Sub(c.RotatedAt) <= leeway
}

// reuse revokes the grant of a refresh token presented after it was
// replaced (RFC 6819 §5.2.2.3): the server cannot tell the app from a
// thief, so neither keeps the grant. It is logged: a stolen token is the
// likeliest cause, a client that retries too late the other.
func (h refreshHandler) reuse(ctx context.Context, requestID, subject, client string) error {
	if err := h.s.store.RevokeGrant(ctx, requestID); err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	h.s.log.WarnContext(ctx, "refresh token reused: grant revoked", "subject", subject, "client", client)
	return errRefreshUsed.WithDebug("Refresh token reuse was detected; the grant was revoked.")
}
