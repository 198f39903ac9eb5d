package profile

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"

	"idp/account"
	"idp/ent"
	"idp/ent/user"
	"idp/picture"
)

func (s *Server) handleGetProfile(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.profileOf(r.Context(), principal(r).User))
}

// patchable are the fields PATCH /v1/profile changes; readOnly the ones it
// refuses by name rather than ignore, so a client never believes it changed
// them.
var (
	patchable = []string{"first_name", "last_name", "gender"}
	readOnly  = []string{"id", "username", "email", "password", "picture_url", "created_at", "updated_at"}
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
	u := principal(r).User
	update := s.db.Ent.User.UpdateOneID(u.ID)
	if v, ok := fields["first_name"]; ok {
		if name, fe, ok := checkName("first_name", v, true); ok {
			update.SetFirstName(name)
		} else {
			errs = append(errs, fe)
		}
	}
	if v, ok := fields["last_name"]; ok {
		if name, fe, ok := checkName("last_name", v, true); ok {
			update.SetLastName(name)
		} else {
			errs = append(errs, fe)
		}
	}
	if v, ok := fields["gender"]; ok {
		if g, fe, ok := checkGender(v); ok {
			update.SetGender(g)
		} else {
			errs = append(errs, fe)
		}
	}
	changed := len(fields) > 0
	if len(errs) > 0 {
		writeProblem(w, validationProblem(errs))
		return
	}
	if changed {
		var err error
		if u, err = update.Save(ctx); err != nil {
			s.fail(w, r, "patch profile", err)
			return
		}
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
	img, err := s.process(ctx, src)
	var errs []FieldError
	if !s.pictureError(w, &errs, err) {
		return
	}
	if len(errs) > 0 {
		writeProblem(w, validationProblem(errs))
		return
	}

	u := principal(r).User
	key := picture.Key(s.pictureKeySecret(u.Username), img)
	if err := s.pictures.Put(ctx, key, img); err != nil {
		s.fail(w, r, "put picture", err)
		return
	}
	updated, err := s.setPicture(ctx, u, &key)
	if err != nil {
		if u.PictureKey == nil || *u.PictureKey != key {
			s.deletePicture(ctx, key)
		}
		s.fail(w, r, "put picture", err)
		return
	}
	writeJSON(w, http.StatusOK, s.profileOf(ctx, updated))
}

func (s *Server) handleDeletePicture(w http.ResponseWriter, r *http.Request) {
	u := principal(r).User
	if u.PictureKey != nil {
		if _, err := s.setPicture(r.Context(), u, nil); err != nil {
			s.fail(w, r, "delete picture", err)
			return
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// errPictureChanged means another request changed the picture meanwhile.
var errPictureChanged = errors.New("profile: the picture changed concurrently")

// setPicture points the user at key (nil: no picture) and removes the
// object the user had before. The update is conditional on the old key, so
// of two concurrent changes neither deletes the object the other stored.
func (s *Server) setPicture(ctx context.Context, u *ent.User, key *string) (*ent.User, error) {
	q := s.db.Ent.User.Update().Where(user.ID(u.ID))
	if u.PictureKey == nil {
		q.Where(user.PictureKeyIsNil())
	} else {
		q.Where(user.PictureKey(*u.PictureKey))
	}
	if key == nil {
		q.ClearPictureKey()
	} else {
		q.SetPictureKey(*key)
	}
	n, err := q.Save(ctx)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, errPictureChanged
	}
	if old := u.PictureKey; old != nil && (key == nil || *old != *key) {
		s.deletePicture(ctx, *old)
	}
	updated, err := s.accounts.Get(ctx, u.ID)
	if errors.Is(err, account.ErrNotFound) {
		return nil, err
	}
	return updated, err
}
