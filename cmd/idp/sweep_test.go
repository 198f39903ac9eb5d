package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"idp/database/databasetest"
	"idp/fake"
)

// TestSweepPassIsLogged: the sweeper runs on its interval and logs a pass
// that removed something with what it removed, per kind and in all, and
// what it took (make bench's scale mode times sweeps from this line); a
// pass that removes nothing logs nothing.
func TestSweepPassIsLogged(t *testing.T) {
	ctx := context.Background()
	clock := fake.NewRunningClock()
	s := startServer(t, databasetest.SQLiteURL(t), func(c *config) {
		c.clock = clock.Now
		c.SweepInterval = 50 * time.Millisecond
	})
	s.mobile()
	s.createUser("sweepy", "sweepy@example.com", testPassword)
	if _, err := mobileConfig(s, allUserScopes...).PasswordCredentialsToken(ctx, "sweepy", testPassword); err != nil {
		t.Fatal(err)
	}
	// Idle passes (nothing has expired yet) are quiet.
	time.Sleep(300 * time.Millisecond)
	if line, ok := sweepLine(s.logs.String()); ok {
		t.Fatalf("a pass that removed nothing was logged: %s", line)
	}
	// Past the access token's lifetime and grace, its row goes.
	clock.Advance(20 * time.Minute)
	deadline := time.Now().Add(30 * time.Second)
	for {
		line, ok := sweepLine(s.logs.String())
		if ok {
			var l struct {
				Removed       int    `json:"removed"`
				ExpiredTokens int    `json:"expired_tokens"`
				Took          string `json:"took"`
			}
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("sweep line %s: %v", line, err)
			}
			if l.ExpiredTokens < 1 || l.Removed < l.ExpiredTokens {
				t.Errorf("sweep line %s: want expired_tokens ≥ 1 within removed", line)
			}
			if _, err := time.ParseDuration(l.Took); err != nil {
				t.Errorf("sweep line %s: took %q is not a duration", line, l.Took)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sweep pass logged after the token expired:\n%s", s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sweepLine returns the first log line whose message is "sweep".
func sweepLine(logs string) (string, bool) {
	for line := range strings.Lines(logs) {
		var l struct{ Msg string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "sweep" {
			return strings.TrimSpace(line), true
		}
	}
	return "", false
}
