package session_test

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"idp/database"
	"idp/session"
)

// TestListUser: a user's live sessions, newest first, each as Lookup
// reads it; another user's, an idle one and one past its absolute end are
// left out, and listing does not count as being seen.
func TestListUser(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, clock := newStore(db)
		create := func(user int64, ua string) string {
			t.Helper()
			_, sess, err := s.Create(ctx, user, []string{"pwd"}, ua, false)
			if err != nil {
				t.Fatal(err)
			}
			return sess.ID
		}
		ids := func(user int64) []string {
			t.Helper()
			list, err := s.ListUser(ctx, user)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, x := range list {
				if x.UserID != user {
					t.Errorf("user %d's list holds a session of user %d", user, x.UserID)
				}
				out = append(out, x.ID)
			}
			return out
		}

		old := create(7, "Old/1")
		clock.Advance(2 * 24 * time.Hour)
		mid := create(7, "Mid/1")
		clock.Advance(time.Hour)
		newest := create(7, "New/1\x00\x07")
		other := create(8, "Other/1")

		list, err := s.ListUser(ctx, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 || list[0].ID != newest || list[1].ID != mid || list[2].ID != old {
			t.Fatalf("list %v, want newest %s, %s, %s", list, newest, mid, old)
		}
		if list[0].UserAgent != "New/1" || !list[0].CreatedAt.Equal(clock.Now().UTC().Truncate(time.Microsecond)) {
			t.Errorf("newest: %+v", list[0])
		}
		if got := ids(8); len(got) != 1 || got[0] != other {
			t.Errorf("user 8: %v", got)
		}

		// old was last seen over 3 days ago (the idle lifetime): gone
		// from the list, as from Lookup.
		clock.Advance(23 * time.Hour)
		if got := ids(7); len(got) != 2 || got[0] != newest || got[1] != mid {
			t.Errorf("after old went idle: %v", got)
		}
		before, _ := s.ListUser(ctx, 7)
		clock.Advance(time.Hour)
		after, _ := s.ListUser(ctx, 7)
		if !after[0].LastSeenAt.Equal(before[0].LastSeenAt) {
			t.Errorf("listing recorded a sighting: %v then %v", before[0].LastSeenAt, after[0].LastSeenAt)
		}
		// Past the idle lifetime of all.
		clock.Advance(3 * 24 * time.Hour)
		if got := ids(7); len(got) != 0 {
			t.Errorf("after the idle lifetime: %v", got)
		}
	})
}

// TestDeleteOfUser: a user ends their own session by id and nobody
// else's; ending one twice, or an unknown one, reports false.
func TestDeleteOfUser(t *testing.T) {
	onSQLite(t, func(t *testing.T, db *database.DB) {
		ctx := context.Background()
		s, _ := newStore(db)
		mineToken, mine, err := s.Create(ctx, 7, []string{"pwd"}, "", false)
		if err != nil {
			t.Fatal(err)
		}
		theirsToken, theirs, err := s.Create(ctx, 8, []string{"pwd"}, "", false)
		if err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name string
			user int64
			id   string
			want bool
		}{
			{"another user's", 7, theirs.ID, false},
			{"unknown", 7, "AAAAAAAAAAAAAAAAAAAAAA", false},
			{"empty", 7, "", false},
			{"own", 7, mine.ID, true},
			{"own, again", 7, mine.ID, false},
		}
		for _, tt := range tests {
			got, err := s.DeleteOfUser(ctx, tt.user, tt.id)
			if err != nil || got != tt.want {
				t.Errorf("%s: %v, %v; want %v", tt.name, got, err, tt.want)
			}
		}
		if _, err := s.Lookup(ctx, mineToken); err == nil {
			t.Error("the ended session still signs in")
		}
		if _, err := s.Lookup(ctx, theirsToken); err != nil {
			t.Errorf("another user's session was ended: %v", err)
		}
	})
}

// TestCleanUserAgent: what a token grant records of a user agent is what
// a session stores.
func TestCleanUserAgent(t *testing.T) {
	long := ""
	for len(long) < 300 {
		long += "é"
	}
	for _, ua := range []string{"", "Firefox/140", "a\x00b\nc", long, "\xff\xfe"} {
		got := session.CleanUserAgent(ua)
		if len(got) > 255 || !utf8.ValidString(got) || strings.ContainsAny(got, "\x00\n") {
			t.Errorf("CleanUserAgent(%q) = %q", ua, got)
		}
	}
	if got := session.CleanUserAgent("a\x00b"); got != "ab" {
		t.Errorf("got %q", got)
	}
}
