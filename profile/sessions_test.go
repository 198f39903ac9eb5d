package profile

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"idp/oauth"
	"idp/session"
)

// fakeLogins and fakeBrowsers are a user's logins, as the stores give them.
type fakeLogins struct {
	list  map[string][]oauth.Login
	ended []string
}

func (f *fakeLogins) Logins(_ context.Context, subject string) ([]oauth.Login, error) {
	return f.list[subject], nil
}

func (f *fakeLogins) EndLogin(_ context.Context, subject, requestID string) (bool, error) {
	for i, l := range f.list[subject] {
		if l.RequestID == requestID {
			f.list[subject] = append(f.list[subject][:i], f.list[subject][i+1:]...)
			f.ended = append(f.ended, requestID)
			return true, nil
		}
	}
	return false, nil
}

func (f *fakeLogins) CurrentLogin(context.Context, *http.Request) (string, error) { return "", nil }

type fakeBrowsers struct {
	list  map[int64][]session.Session
	ended []string
}

func (f *fakeBrowsers) ListUser(_ context.Context, userID int64) ([]session.Session, error) {
	return f.list[userID], nil
}

func (f *fakeBrowsers) DeleteOfUser(_ context.Context, userID int64, id string) (bool, error) {
	for i, b := range f.list[userID] {
		if b.ID == id {
			f.list[userID] = append(f.list[userID][:i], f.list[userID][i+1:]...)
			f.ended = append(f.ended, id)
			return true, nil
		}
	}
	return false, nil
}

// TestSessionsAndEndSession: both kinds merged newest first (to the
// microsecond, though shown in whole seconds), the caller's own marked,
// ids of the promised shape that show neither the grant nor the sid; a
// session ends by its id only for its own user, and every other id is
// ErrSessionNotFound without reaching a store.
func TestSessionsAndEndSession(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	logins := &fakeLogins{list: map[string][]oauth.Login{
		"7": {
			{RequestID: "grant-old", ClientID: "mobile", CreatedAt: t0, LastUsedAt: t0.Add(time.Hour), UserAgent: "Phone"},
			{RequestID: "grant-new", ClientID: "mobile", CreatedAt: t0.Add(2*time.Hour + 2*time.Microsecond), LastUsedAt: t0.Add(2 * time.Hour)},
		},
		"8": {{RequestID: "grant-bob", ClientID: "mobile", CreatedAt: t0, LastUsedAt: t0}},
	}}
	browsers := &fakeBrowsers{list: map[int64][]session.Session{
		7: {{ID: "sid-ada", UserID: 7, CreatedAt: t0.Add(2*time.Hour + time.Microsecond), LastSeenAt: t0.Add(3 * time.Hour), UserAgent: "Firefox"}},
	}}
	var events []string
	s := &Server{cfg: Config{ObserveEvent: func(e string) { events = append(events, e) }}, logins: logins, browsers: browsers}
	ctx := context.Background()

	list, err := s.Sessions(ctx, 7, Current{Grant: "grant-old", BrowserSession: "sid-ada"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].ref != "grant-new" || list[1].ref != "sid-ada" || list[2].ref != "grant-old" {
		t.Fatalf("order: %+v", list)
	}
	if list[0].Current || !list[1].Current || !list[2].Current {
		t.Errorf("current: %+v", list)
	}
	if list[1].ClientID != nil || list[0].ClientID == nil || *list[0].ClientID != "mobile" {
		t.Errorf("client ids: %+v", list)
	}
	for _, x := range list {
		if len(x.ID) != sessionIDLen || strings.Contains(x.ID, x.ref) || x.CreatedAt.Nanosecond() != 0 {
			t.Errorf("session %+v", x)
		}
	}
	if !strings.HasPrefix(list[0].ID, "rt_") || !strings.HasPrefix(list[1].ID, "bs_") {
		t.Errorf("prefixes: %s, %s", list[0].ID, list[1].ID)
	}
	again, _ := s.Sessions(ctx, 7, Current{})
	if again[0].ID != list[0].ID || again[0].Current {
		t.Errorf("not stable, or current without a caller: %+v then %+v", list[0], again[0])
	}
	bobs, _ := s.Sessions(ctx, 8, Current{})

	for _, id := range []string{"", "rt_", "xx_" + list[0].ID[3:], list[0].ID + "A", list[0].ID[:len(list[0].ID)-1],
		"rt_" + list[1].ID[3:], bobs[0].ID, strings.Repeat("\x00", sessionIDLen)} {
		if err := s.EndSession(ctx, 7, id); !errors.Is(err, ErrSessionNotFound) {
			t.Errorf("EndSession(%q): %v", id, err)
		}
	}
	if len(logins.ended)+len(browsers.ended) != 0 || len(events) != 0 {
		t.Fatalf("ended %v %v, events %v", logins.ended, browsers.ended, events)
	}
	for _, x := range list[:2] {
		if err := s.EndSession(ctx, 7, x.ID); err != nil {
			t.Errorf("EndSession(%s): %v", x.ID, err)
		}
		if err := s.EndSession(ctx, 7, x.ID); !errors.Is(err, ErrSessionNotFound) {
			t.Errorf("EndSession(%s) again: %v", x.ID, err)
		}
	}
	if len(logins.ended) != 1 || logins.ended[0] != "grant-new" || len(browsers.ended) != 1 || browsers.ended[0] != "sid-ada" {
		t.Errorf("ended %v, %v", logins.ended, browsers.ended)
	}
	if len(events) != 2 || events[0] != "session_ended" {
		t.Errorf("events %v", events)
	}
}
