// Package mail delivers the service's emails (password-reset codes, notices
// of a changed password) reliably: callers Enqueue a Message into a
// transactional outbox in the same database transaction as the change it
// reports, and a worker (Outbox.Run) hands it to a Sender afterwards,
// retrying with backoff until it is accepted. Two senders exist: SendGrid for
// production and LogFile, the embedded default, which appends each message to
// a file instead of sending it.
//
// Messages carry one-time codes, so nothing in this package logs a subject or
// a body: logs name message ids, attempt numbers and status codes.
package mail

import (
	"context"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
)

// Message is one email to one recipient. Text is the plain-text body and HTML
// the optional HTML alternative.
type Message struct {
	To      string
	Subject string
	Text    string
	HTML    string
	// UserID is the account the message was written for (0: none). It is
	// not sent: the outbox keeps it so that erasing the account takes its
	// messages, whatever address they went to.
	UserID int64
}

// Sender hands a message to whatever delivers it. A Sender returns nil only
// once the message was accepted; an error wrapping ErrPermanent says that
// trying again cannot help, and any other error is retried later.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// ErrPermanent is wrapped by a Sender's error when retrying the same message
// cannot succeed (a rejected payload, a bad API key), so that the outbox
// gives up at once instead of retrying for days.
var ErrPermanent = errors.New("mail: permanent failure")

// ErrInvalidMessage is returned by Enqueue for a message that could never be
// sent (no recipient, no subject, no body).
var ErrInvalidMessage = errors.New("mail: invalid message")

func (m Message) validate() error {
	switch {
	case strings.TrimSpace(m.To) == "":
		return fmt.Errorf("%w: no recipient", ErrInvalidMessage)
	case strings.TrimSpace(m.Subject) == "":
		return fmt.Errorf("%w: no subject", ErrInvalidMessage)
	case m.Text == "" && m.HTML == "":
		return fmt.Errorf("%w: no body", ErrInvalidMessage)
	}
	return nil
}

// Address is a sender's or recipient's address with an optional display
// name.
type Address struct {
	Name  string
	Email string
}

// String formats a as RFC 5322 does ("Name <a@b>", or "<a@b>" without a
// name).
func (a Address) String() string {
	return (&netmail.Address{Name: a.Name, Address: a.Email}).String()
}

// ParseAddress parses "Name <a@example.com>" or "a@example.com", the forms
// IDP_MAIL_FROM takes.
func ParseAddress(s string) (Address, error) {
	a, err := netmail.ParseAddress(strings.TrimSpace(s))
	if err != nil {
		return Address{}, fmt.Errorf("mail: parse address %q: %w", s, err)
	}
	return Address{Name: a.Name, Email: a.Address}, nil
}
