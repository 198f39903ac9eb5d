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
	if lines := sweepLines(s.logs.String()); len(lines) > 0 {
		t.Fatalf("a pass that removed nothing was logged: %s", lines[0])
	}
	// Past the access token's lifetime and grace, its row goes. A pass
	// under way when the clock moves may take the rate-limit windows (each
	// step reads the clock) and leave the token to the next, so every pass
	// logged until then is read.
	clock.Advance(20 * time.Minute)
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, line := range sweepLines(s.logs.String()) {
			var l struct {
				Removed       int    `json:"removed"`
				ExpiredTokens int    `json:"expired_tokens"`
				Took          string `json:"took"`
			}
			if err := json.Unmarshal([]byte(line), &l); err != nil {
				t.Fatalf("sweep line %s: %v", line, err)
			}
			if l.Removed < 1 || l.Removed < l.ExpiredTokens {
				t.Fatalf("sweep line %s: want removed ≥ 1 and ≥ expired_tokens", line)
			}
			if _, err := time.ParseDuration(l.Took); err != nil {
				t.Fatalf("sweep line %s: took %q is not a duration", line, l.Took)
			}
			if l.ExpiredTokens >= 1 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no sweep pass logged the expired token:\n%s", s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sweepLines returns the log lines whose message is "sweep", in order.
func sweepLines(logs string) []string {
	var out []string
	for line := range strings.Lines(logs) {
		var l struct{ Msg string }
		if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "sweep" {
			out = append(out, strings.TrimSpace(line))
		}
	}
	return out
}
