package profile

import (
	"fmt"
	"io"
	"net/http"
	"os"

	"idp/budget"
	"idp/picture"
)

// uploadSpoolPictures is the default upload budget in pictures of the byte
// limit. A picture's bytes wait on disk, not in memory, so the budget bounds
// disk, and can be large enough that slow uploads (which hold their bytes
// for as long as the client takes to send them) cannot cheaply block the
// others: 64 pictures of the default 5 MiB are 320 MiB.
const uploadSpoolPictures = 64

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
func (s *Server) HoldBody(r *http.Request, limit int64) (release func(), ok bool) {
	n := limit
	if r.ContentLength >= 0 {
		n = min(r.ContentLength, limit)
	}
	if n <= smallBody {
		return func() {}, true
	}
	release, err := s.uploads.Acquire(r.Context(), n, s.decodeWait)
	if err != nil {
		return nil, false
	}
	return release, true
}

// newUploads is the upload budget of size bytes (0: uploadSpoolPictures
// pictures of maxBytes).
func newUploads(size, maxBytes int64) *budget.Budget {
	if size <= 0 {
		size = uploadSpoolPictures * maxBytes
	}
	return budget.New(size)
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
