package profile

import (
	"net/http"

	"idp/budget"
)

// UploadMemory is the most that bodies carrying a picture hold at once,
// from the moment they are read until their request ends (a signup keeps
// its picture while the password is hashed): three pictures of the default
// 5 MiB, which keep both hashing slots of two cores busy. Beside the
// hashing budget it is what a picture flood holds above idle, so it is no
// larger than that needs. It is a budget of its own, not the one hashing and decoding share,
// so that slow uploads can delay other uploads but never a login.
const UploadMemory = 16 << 20

// smallBody is the size up to which a body takes nothing from the upload
// budget: a form or a JSON signup, not a picture.
const smallBody = 64 << 10

// HoldBody takes from the upload budget what r's body will hold once read:
// its Content-Length, or limit when the length is not known. It waits as a
// picture decode waits for its memory; ok is false when the budget stayed
// taken (answer 503) or the client went away. Call it before reading the
// body, and release when the request no longer holds what it read.
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

// newUploads is the upload budget of size bytes (0: UploadMemory).
func newUploads(size int64) *budget.Budget {
	if size <= 0 {
		size = UploadMemory
	}
	return budget.New(size)
}
