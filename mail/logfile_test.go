package mail

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLogFileLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "mail.log") // the directory is created
	lf, err := NewLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	lf.now = func() time.Time { return time.Date(2030, 1, 2, 4, 4, 5, 0, time.FixedZone("CET", 3600)) }

	m := Message{To: "alice@example.com", Subject: "Your code <1>", Text: "Code: 12345678\nbye & thanks", HTML: "<p>html-only</p>"}
	if err := lf.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	lines := readLines(t, path)
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1", len(lines))
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &fields); err != nil {
		t.Fatalf("line is not JSON: %v: %s", err, lines[0])
	}
	if keys := slices.Sorted(maps.Keys(fields)); !slices.Equal(keys, []string{"sent_at", "subject", "text", "to"}) {
		t.Errorf("keys = %v, want exactly to, subject, text, sent_at", keys)
	}
	want := map[string]any{"to": m.To, "subject": m.Subject, "text": m.Text, "sent_at": "2030-01-02T03:04:05Z"}
	for k, v := range want {
		if fields[k] != v {
			t.Errorf("%s = %q, want %q", k, fields[k], v)
		}
	}
	if strings.Contains(lines[0], "html-only") {
		t.Errorf("the HTML body was written: %s", lines[0])
	}
	if _, err := time.Parse(time.RFC3339, fields["sent_at"].(string)); err != nil {
		t.Errorf("sent_at is not RFC 3339: %v", err)
	}
}

func TestLogFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	lf, err := NewLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode = %v, want 0600", perm)
	}
}

func TestLogFileAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	for i := range 3 {
		lf, err := NewLogFile(path) // as after a restart
		if err != nil {
			t.Fatal(err)
		}
		if err := lf.Send(context.Background(), Message{To: fmt.Sprintf("u%d@example.com", i), Subject: "s", Text: "t"}); err != nil {
			t.Fatal(err)
		}
		lf.Close()
	}
	lines := readLines(t, path)
	if len(lines) != 3 {
		t.Fatalf("%d lines after three opens, want 3 (the file must be appended to, not truncated)", len(lines))
	}
	for i, l := range lines {
		if !strings.Contains(l, fmt.Sprintf(`"to":"u%d@example.com"`, i)) {
			t.Errorf("line %d = %s", i, l)
		}
	}
}

// TestLogFileConcurrentWriters writes long lines from many goroutines through
// two LogFiles on the same path (as two processes would) and checks that
// every line is whole.
func TestLogFileConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mail.log")
	var files []*LogFile
	for range 2 {
		lf, err := NewLogFile(path)
		if err != nil {
			t.Fatal(err)
		}
		defer lf.Close()
		files = append(files, lf)
	}
	const writers, perWriter = 8, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			lf := files[w%len(files)]
			for i := range perWriter {
				text := strings.Repeat(fmt.Sprintf("%c", 'a'+w), 16<<10) + fmt.Sprint(i)
				m := Message{To: fmt.Sprintf("w%d-%d@example.com", w, i), Subject: "s", Text: text}
				if err := lf.Send(context.Background(), m); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	lines := readLines(t, path)
	if len(lines) != writers*perWriter {
		t.Fatalf("%d lines, want %d", len(lines), writers*perWriter)
	}
	seen := map[string]bool{}
	for _, l := range lines {
		var v logLine
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("interleaved or broken line (%v): %.80s…", err, l)
		}
		var w, i int
		if _, err := fmt.Sscanf(v.To, "w%d-%d@example.com", &w, &i); err != nil {
			t.Fatalf("to = %q", v.To)
		}
		if want := strings.Repeat(fmt.Sprintf("%c", 'a'+w), 16<<10) + fmt.Sprint(i); v.Text != want {
			t.Fatalf("text of %s is mixed with another message's", v.To)
		}
		seen[v.To] = true
	}
	if len(seen) != writers*perWriter {
		t.Errorf("%d distinct messages, want %d", len(seen), writers*perWriter)
	}
}

func TestLogFileClosed(t *testing.T) {
	lf, err := NewLogFile(filepath.Join(t.TempDir(), "mail.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := lf.Close(); err != nil {
		t.Fatal(err)
	}
	err = lf.Send(context.Background(), Message{To: "a@example.com", Subject: "s", Text: "t"})
	if !errors.Is(err, os.ErrClosed) {
		t.Errorf("Send after Close = %v, want os.ErrClosed", err)
	}
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
