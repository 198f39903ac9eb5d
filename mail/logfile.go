package mail

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// LogFile is the embedded default's Sender: instead of sending a message it
// appends it to a file as one JSON object per line,
//
//	{"to":"…","subject":"…","text":"…","sent_at":"2006-01-02T15:04:05Z"}
//
// so that a developer (or a test) can read the codes the service would have
// mailed. The HTML body is not written: the text body carries the same
// content, and the line's fields are fixed by the service's contract.
type LogFile struct {
	path string
	now  func() time.Time

	mu sync.Mutex // one write per line, so lines never interleave
	f  *os.File
}

// logLine is one line of the file; the field order is the order written.
type logLine struct {
	To      string `json:"to"`
	Subject string `json:"subject"`
	Text    string `json:"text"`
	SentAt  string `json:"sent_at"`
}

// NewLogFile opens path for appending, creating it (and its directory) if
// needed. The file is created with mode 0600: it holds one-time codes.
func NewLogFile(path string) (*LogFile, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("mail: log file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("mail: log file: %w", err)
	}
	return &LogFile{path: path, now: time.Now, f: f}, nil
}

// Send appends m to the file. O_APPEND and a single write per line keep lines
// whole even when another process appends to the same file.
func (l *LogFile) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	// An Encoder, unlike json.Marshal, can leave <, > and & unescaped,
	// which keeps the file readable; Encode ends the line with "\n".
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(logLine{
		To:      m.To,
		Subject: m.Subject,
		Text:    m.Text,
		SentAt:  l.now().UTC().Format(time.RFC3339),
	}); err != nil {
		return fmt.Errorf("mail: log file: %w", err)
	}
	b := buf.Bytes()

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return fmt.Errorf("mail: log file %s: %w", l.path, os.ErrClosed)
	}
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("mail: log file: %w", err)
	}
	return nil
}

// Close closes the file; Send fails afterwards.
func (l *LogFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

var _ Sender = (*LogFile)(nil)
