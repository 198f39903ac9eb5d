package profile

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/sync/semaphore"

	"idp/budget"
	"idp/picture"
	"idp/ratelimit"
)

// uploadSpoolPictures is the default upload budget in pictures of the byte
// limit. A picture's bytes wait on disk, not in memory, so the budget bounds
// disk, and can be large enough that slow uploads (which hold their bytes
// for as long as the client takes to send them) cannot cheaply block the
// others: 64 pictures of the default 5 MiB are 320 MiB.
const uploadSpoolPictures = 64

// addressShare is how many client addresses it takes to fill the upload
// budget: one address holds at most a quarter of it at once (and always
// one upload, whatever its size), so that slow uploads from a single
// address cannot turn away everyone else's, while a carrier-grade NAT still
// has room for many of its users' pictures at once.
const addressShare = 4

// smallBody is the size up to which a body takes nothing from the upload
// budget: a form or a JSON signup, not a picture.
const smallBody = 64 << 10

// HoldBody takes from the upload budget what r's body will put in the
// spool: its Content-Length, or limit when the length is not known, so
// that the spooled bytes can never exceed the budget. It waits as a
// picture decode waits for its memory; ok is false when the budget stayed
// taken (answer 503) or the client went away. Call it before reading the
// body, and release when the request no longer holds what it read (a
// signup keeps its picture while the password is hashed).
//
// An address past its share of the budget waits as well, for what it holds
// to be released, within the same bound.
func (s *Server) HoldBody(r *http.Request, limit int64) (release func(), ok bool) {
	n := limit
	if r.ContentLength >= 0 {
		n = min(r.ContentLength, limit)
	}
	if n <= smallBody {
		return func() {}, true
	}
	deadline := time.Now().Add(s.decodeWait)
	releaseShare, ok := s.uploads.byAddress.take(r.Context(), ratelimit.ClientAddr(r.Context()), n, deadline)
	if !ok {
		return nil, false
	}
	releaseBytes, err := s.uploads.Acquire(r.Context(), n, time.Until(deadline))
	if err != nil {
		releaseShare()
		return nil, false
	}
	return func() { releaseBytes(); releaseShare() }, true
}

// uploads is the budget of the bytes that bodies carrying pictures put in
// the spool, with what each client address holds of it.
type uploads struct {
	*budget.Budget
	byAddress *addressHolds
}

// newUploads is the upload budget of size bytes (0: uploadSpoolPictures
// pictures of maxBytes).
func newUploads(size, maxBytes int64) uploads {
	if size <= 0 {
		size = uploadSpoolPictures * maxBytes
	}
	return uploads{Budget: budget.New(size),
		byAddress: &addressHolds{most: max(size/addressShare, 1), by: make(map[string]*addressHold)}}
}

// spool writes a picture part to a file of its own in the spool directory
// as it is read, at most maxBytes of it (more is picture.ErrTooLarge): the
// caller closes it, which removes it, when the request no longer needs it.
func (s *Server) spool(r io.Reader, maxBytes int64) (*picture.File, error) {
	return picture.Spool(s.spoolDir, r, picture.Limits{MaxBytes: maxBytes})
}

// NewSpoolDir makes a fresh directory for spooled uploads under dir ("":
// os.TempDir()), for Config.SpoolDir: a server removes it when it stops,
// and one that crashed leaves it to the system's temporary-file clean-up,
// since the next start makes its own and never reads another's.
func NewSpoolDir(dir string) (path string, remove func() error, err error) {
	path, err = os.MkdirTemp(dir, "idp-uploads-")
	if err != nil {
		return "", nil, fmt.Errorf("profile: make the upload spool: %w", err)
	}
	return path, func() error { return os.RemoveAll(path) }, nil
}

// addressHolds counts the upload bytes each client address holds against
// its share. An address has an entry only while it holds or waits for
// bytes, so there are as many as there are uploads in flight.
type addressHolds struct {
	most int64 // bytes one address may hold at once

	mu sync.Mutex
	by map[string]*addressHold
}

type addressHold struct {
	share *semaphore.Weighted
	users int // requests holding or waiting for bytes of share
}

// take counts n more bytes against addr's share, waiting for them to be
// free until deadline or ctx's end (ok false then); release gives them
// back. A body larger than the share counts as the whole share.
// Requests with no known address (outside the server's middleware) are not
// counted.
func (h *addressHolds) take(ctx context.Context, addr string, n int64, deadline time.Time) (release func(), ok bool) {
	if addr == "" {
		return func() {}, true
	}
	n = min(n, h.most)
	h.mu.Lock()
	a := h.by[addr]
	if a == nil {
		a = &addressHold{share: semaphore.NewWeighted(h.most)}
		h.by[addr] = a
	}
	a.users++
	h.mu.Unlock()
	leave := func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if a.users--; a.users == 0 {
			delete(h.by, addr)
		}
	}
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := a.share.Acquire(ctx, n); err != nil {
		leave()
		return nil, false
	}
	return sync.OnceFunc(func() {
		a.share.Release(n)
		leave()
	}), true
}
