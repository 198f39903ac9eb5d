package profile

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"idp/oauth"
	"idp/session"
)

// Logins are a user's refresh-token chains (*oauth.Server).
type Logins interface {
	Logins(ctx context.Context, subject string) ([]oauth.Login, error)
	EndLogin(ctx context.Context, subject, requestID string) (bool, error)
	// CurrentLogin is the grant of the access token r carries.
	CurrentLogin(ctx context.Context, r *http.Request) (string, error)
}

// BrowserSessions are a user's signed-in browsers (*session.Store).
type BrowserSessions interface {
	ListUser(ctx context.Context, userID int64) ([]session.Session, error)
	DeleteOfUser(ctx context.Context, userID int64, id string) (bool, error)
}

// Session is one live login of a user as the API shows it: a
// refresh-token chain of an app, or a signed-in browser.
type Session struct {
	// ID is opaque and stable: "rt_" and a digest of the chain's grant,
	// or "bs_" and a digest of the browser session's public id. Neither
	// is a credential, nor derived from one.
	ID string `json:"id"`
	// ClientID is the app's client for a chain, null for a browser
	// session (which is no client's: the apps it signed in to have chains
	// of their own).
	ClientID   *string   `json:"client_id"`
	CreatedAt  time.Time `json:"created_at"`
	LastUsedAt time.Time `json:"last_used_at"`
	// Current marks the login of the request: the chain of the calling
	// access token, or the account page's own browser session.
	Current   bool   `json:"current"`
	UserAgent string `json:"user_agent"`

	// ref is what ends it: the grant's request id or the browser
	// session's id.
	ref string
}

// Current says which login is the caller's own, for Session.Current.
type Current struct {
	// Grant is the request id of the calling access token's grant
	// (oauth.Server.CurrentLogin).
	Grant string
	// BrowserSession is the public id of the calling browser's session
	// (session.Session.ID), for the account page.
	BrowserSession string
}

// ErrSessionNotFound is EndSession's answer for an id that names no live
// login of the user: another user's, unknown, ended or malformed alike.
var ErrSessionNotFound = errors.New("profile: no such session")

// Prefixes of the two kinds of session id.
const (
	chainPrefix   = "rt_"
	browserPrefix = "bs_"
)

// sessionIDLen is the length of a session id: a prefix and 16 bytes of
// digest in unpadded base64url.
var sessionIDLen = len(chainPrefix) + base64.RawURLEncoding.EncodedLen(16)

// sessionID derives the public id of a login from its internal name, under
// a label per kind, so that an id shows neither a grant's request id nor a
// browser session's sid.
func sessionID(prefix, ref string) string {
	sum := sha256.Sum256([]byte("idp session id\x00" + prefix + "\x00" + ref))
	return prefix + base64.RawURLEncoding.EncodeToString(sum[:16])
}

// Sessions returns every live login of the user, newest first (by when it
// began): refresh-token chains and browser sessions. current names the
// caller's own.
func (s *Server) Sessions(ctx context.Context, userID int64, current Current) ([]Session, error) {
	logins, err := s.logins.Logins(ctx, strconv.FormatInt(userID, 10))
	if err != nil {
		return nil, err
	}
	browsers, err := s.browsers.ListUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]Session, 0, len(logins)+len(browsers))
	for _, l := range logins {
		out = append(out, Session{
			ID: sessionID(chainPrefix, l.RequestID), ClientID: &l.ClientID,
			CreatedAt: l.CreatedAt, LastUsedAt: l.LastUsedAt,
			Current: current.Grant != "" && l.RequestID == current.Grant, UserAgent: l.UserAgent,
			ref: l.RequestID,
		})
	}
	for _, b := range browsers {
		out = append(out, Session{
			ID:        sessionID(browserPrefix, b.ID),
			CreatedAt: b.CreatedAt, LastUsedAt: b.LastSeenAt,
			Current: current.BrowserSession != "" && b.ID == current.BrowserSession, UserAgent: b.UserAgent,
			ref: b.ID,
		})
	}
	// Sorted by the times as kept (two logins in one second keep their
	// order), then by id, so that it is stable from one listing to the
	// next; whole seconds are shown, as everywhere in /v1.
	slices.SortFunc(out, func(a, b Session) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	for i := range out {
		out[i].CreatedAt = out[i].CreatedAt.UTC().Truncate(time.Second)
		out[i].LastUsedAt = out[i].LastUsedAt.UTC().Truncate(time.Second)
	}
	return out, nil
}

// EndSession ends the user's login id (as Sessions names it) at once: a
// refresh-token chain loses its refresh and access tokens, a browser
// session is signed out. The caller's own may be ended too. An id that is
// not a live login of the user is ErrSessionNotFound, whatever it is.
func (s *Server) EndSession(ctx context.Context, userID int64, id string) error {
	if len(id) != sessionIDLen || (id[:len(chainPrefix)] != chainPrefix && id[:len(browserPrefix)] != browserPrefix) {
		return ErrSessionNotFound
	}
	// The id is a digest: found among the user's own live logins, it
	// cannot name anyone else's.
	list, err := s.Sessions(ctx, userID, Current{})
	if err != nil {
		return err
	}
	i := slices.IndexFunc(list, func(x Session) bool { return x.ID == id })
	if i < 0 {
		return ErrSessionNotFound
	}
	var ended bool
	if list[i].ClientID != nil {
		ended, err = s.logins.EndLogin(ctx, strconv.FormatInt(userID, 10), list[i].ref)
	} else {
		ended, err = s.browsers.DeleteOfUser(ctx, userID, list[i].ref)
	}
	if err != nil {
		return err
	}
	if !ended {
		return ErrSessionNotFound // ended meanwhile
	}
	s.cfg.ObserveEvent("session_ended")
	return nil
}

func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	grant, err := s.logins.CurrentLogin(ctx, r)
	if err != nil {
		s.fail(w, r, "current login", err)
		return
	}
	list, err := s.Sessions(ctx, principal(r).User.ID, Current{Grant: grant})
	if err != nil {
		s.fail(w, r, "list sessions", err)
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Sessions []Session `json:"sessions"`
	}{list})
}

func (s *Server) handleEndSession(w http.ResponseWriter, r *http.Request) {
	err := s.EndSession(r.Context(), principal(r).User.ID, chi.URLParam(r, "id"))
	switch {
	case errors.Is(err, ErrSessionNotFound):
		writeProblem(w, problem(http.StatusNotFound, "not-found", "No such session",
			"No live session of yours has this id."))
	case err != nil:
		s.fail(w, r, "end session", err)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}
