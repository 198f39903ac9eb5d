package profile

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"idp/storage"
)

func (s *Server) handleGetProfile(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.profileOf(r.Context(), principal(r).User))
}

// patchable are the fields PATCH /v1/profile changes; readOnly the ones it
// refuses by name rather than ignore, so a client never believes it changed
// them.
var (
	patchable = []string{"first_name", "last_name", "gender"}
	readOnly  = []string{"id", "username", "email", "email_verified", "password", "picture_url", "created_at", "updated_at"}
)

func (s *Server) handlePatchProfile(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt != "application/json" && mt != "application/merge-patch+json" {
		writeProblem(w, problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type", "Send application/json."))
		return
	}
	raw, ok := readObject(w, r.Body)
	if !ok {
		return
	}
	var errs []FieldError
	for _, name := range readOnly {
		if _, ok := raw[name]; ok {
			errs = append(errs, FieldError{Field: name, Code: "read_only", Message: "This field cannot be changed here."})
		}
	}
	fields, typeErrs := stringFields(raw, patchable...)
	errs = append(errs, typeErrs...)
	// null removes a member in a merge patch (RFC 7396): a gender goes back
	// to its default, and a name, which an account must have, cannot go.
	for _, name := range patchable {
		if v, ok := raw[name]; !ok || string(v) != "null" {
			continue
		}
		if name == "gender" {
			fields[name] = "unspecified"
			continue
		}
		errs = append(errs, FieldError{Field: name, Code: "required", Message: "This field cannot be removed."})
	}
	if _, invalid := profileUpdate(fields); len(errs)+len(invalid) > 0 {
		writeProblem(w, validationProblem(append(errs, invalid...)))
		return
	}
	u, err := s.UpdateProfile(ctx, principal(r).User, fields)
	var invalid *ValidationError
	switch {
	case errors.As(err, &invalid):
		writeProblem(w, validationProblem(invalid.Errors))
		return
	case err != nil:
		s.fail(w, r, "patch profile", err)
		return
	}
	writeJSON(w, http.StatusOK, s.profileOf(ctx, u))
}

// handlePutPicture replaces the picture: the image as the multipart part
// "picture" or as the raw body with an image content type.
func (s *Server) handlePutPicture(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	lim := s.cfg.Pictures
	if r.ContentLength > lim.MaxBytes+64<<10 {
		writeProblem(w, tooLarge(lim))
		return
	}
	release, ok := s.HoldBody(r, lim.MaxBytes+64<<10)
	if !ok {
		pictureBusy(w)
		return
	}
	defer release()
	r.Body = http.MaxBytesReader(w, r.Body, lim.MaxBytes+64<<10)
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var src io.Reader
	switch {
	case mt == "multipart/form-data":
		mr := multipart.NewReader(r.Body, params["boundary"])
		for n := 0; src == nil; n++ {
			part, err := mr.NextPart()
			if err == io.EOF || n >= maxParts {
				writeProblem(w, validationProblem([]FieldError{{Field: "picture", Code: "required", Message: "Send the image as the part \"picture\"."}}))
				return
			} else if err != nil {
				writeProblem(w, badBody(err))
				return
			}
			if part.FormName() == "picture" {
				src = part
			}
		}
	case strings.HasPrefix(mt, "image/") || mt == "application/octet-stream":
		src = r.Body
	default:
		writeProblem(w, problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"Send the image as multipart/form-data part \"picture\", or as the body with an image content type."))
		return
	}
	// The bearer check has passed (the route's middleware): spool the
	// body, then read its header, then decode.
	f, err := s.spool(src, lim.MaxBytes)
	if !s.readPictureError(w, err) {
		return
	}
	defer f.Close()
	var errs []FieldError
	upload, ok := s.inspectPicture(w, f, &errs)
	if !ok {
		return
	}
	if len(errs) > 0 {
		writeProblem(w, validationProblem(errs))
		return
	}
	img, ok := s.decodePicture(w, r, upload)
	if !ok {
		return
	}

	updated, err := s.storePicture(ctx, principal(r).User, img)
	if err != nil {
		s.fail(w, r, "put picture", err)
		return
	}
	writeJSON(w, http.StatusOK, s.profileOf(ctx, updated))
}

func (s *Server) handleDeletePicture(w http.ResponseWriter, r *http.Request) {
	if err := s.RemovePicture(r.Context(), principal(r).User); err != nil {
		s.fail(w, r, "delete picture", err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// errPictureChanged means other requests kept changing the picture for the
// whole retry loop of setPicture.
var errPictureChanged = errors.New("profile: the picture changed concurrently")

// setPictureAttempts bounds the retries of setPicture. Each failed attempt
// means another request's update succeeded in between, so a handful of
// concurrent retries of one app all get through.
const setPictureAttempts = 8

// setPicture points the user at key ("": no picture), whatever the
// picture is now: the last writer wins. Each attempt is an update
// conditional on the key last read, retried with the newly read key when
// another request changed it in between; after a successful update the
// object it replaced is deleted, and only that one: no other row can name
// it, keys being fresh per upload. linked reports whether the row now names
// key, so that a caller whose update failed deletes its own object and one
// whose update succeeded does not, even if reading the row back failed.
func (s *Server) setPicture(ctx context.Context, u *storage.User, key string) (updated *storage.User, linked bool, err error) {
	current := u.PictureKey
	for range setPictureAttempts {
		if current == "" && key == "" {
			return u, true, nil // no picture, as asked
		}
		swapped, err := s.users.SwapPictureKey(ctx, u.ID, current, key)
		if err != nil {
			return nil, false, err
		}
		if swapped {
			if current != "" {
				s.deletePicture(ctx, current)
			}
			updated, err := s.accounts.Get(ctx, u.ID)
			return updated, true, err
		}
		// Changed meanwhile (or the user is gone): read it again.
		if u, err = s.accounts.Get(ctx, u.ID); err != nil {
			return nil, false, err
		}
		current = u.PictureKey
	}
	return nil, false, errPictureChanged
}
