package profile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"

	"idp/picture"
	"idp/storage"
)

// ErrPicturesBusy is returned while every picture-decoding slot, or the
// memory budget, stays taken: retry shortly.
var ErrPicturesBusy = errBusy

// UpdateProfile changes what fields holds of first_name, last_name and
// gender (absent keys stay as they are), with PATCH /v1/profile's rules. A
// bad value is a *ValidationError naming its field; nothing changes then.
func (s *Server) UpdateProfile(ctx context.Context, u *storage.User, fields map[string]string) (*storage.User, error) {
	update, errs := profileUpdate(fields)
	if len(errs) > 0 {
		return nil, &ValidationError{Errors: errs}
	}
	if len(fields) == 0 {
		return u, nil
	}
	updated, err := s.users.UpdateProfile(ctx, u.ID, update)
	if err != nil {
		return nil, fmt.Errorf("update profile: %w", err)
	}
	return updated, nil
}

// profileUpdate checks fields and returns the update that sets them, or
// what is wrong with them.
func profileUpdate(fields map[string]string) (storage.ProfileUpdate, []FieldError) {
	var errs []FieldError
	var update storage.ProfileUpdate
	if v, ok := fields["first_name"]; ok {
		if name, fe, ok := checkName("first_name", v, true); ok {
			update.FirstName = &name
		} else {
			errs = append(errs, fe)
		}
	}
	if v, ok := fields["last_name"]; ok {
		if name, fe, ok := checkName("last_name", v, true); ok {
			update.LastName = &name
		} else {
			errs = append(errs, fe)
		}
	}
	if v, ok := fields["gender"]; ok {
		if g, fe, ok := checkGender(v); ok {
			update.Gender = &g
		} else {
			errs = append(errs, fe)
		}
	}
	return update, errs
}

// ReplacePicture makes src, an uploaded image already bounded by the
// caller (a spooled *picture.File, which the caller closes after this
// returns), u's picture, as PUT /v1/profile/picture does: checked by its
// header first, decoded within the shared budget, cleaned and stored, and
// the old object deleted. Errors: ErrPictureTooLarge, ErrNotImage, a
// *ValidationError (too many pixels), ErrPicturesBusy, or the store's.
func (s *Server) ReplacePicture(ctx context.Context, u *storage.User, src picture.Source) (*storage.User, error) {
	if src != nil && src.Size() > s.cfg.Pictures.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrPictureTooLarge, src.Size())
	}
	upload, fe, err := s.inspect(src)
	if err != nil {
		return nil, err
	}
	if fe != nil {
		return nil, &ValidationError{Errors: []FieldError{*fe}}
	}
	img, err := s.decodeUpload(ctx, upload)
	if err != nil {
		return nil, err
	}
	return s.storePicture(ctx, u, img)
}

// storePicture stores img under a fresh key and points u at it. A key that
// no row names once it fails is deleted: a store may have written the
// object all the same, as the request ended.
func (s *Server) storePicture(ctx context.Context, u *storage.User, img picture.Image) (*storage.User, error) {
	key := picture.NewKey(img.ContentType)
	if err := s.pictures.Put(ctx, key, img); err != nil {
		s.deletePicture(ctx, key)
		return nil, fmt.Errorf("put picture: %w", err)
	}
	updated, linked, err := s.setPicture(ctx, u, key)
	if err != nil {
		if !linked {
			s.deletePicture(ctx, key) // ours alone: no row names it
		}
		return nil, fmt.Errorf("link picture: %w", err)
	}
	return updated, nil
}

// RemovePicture removes u's picture, if any.
func (s *Server) RemovePicture(ctx context.Context, u *storage.User) error {
	if !u.HasPicture() {
		return nil
	}
	if _, _, err := s.setPicture(ctx, u, ""); err != nil {
		return fmt.Errorf("remove picture: %w", err)
	}
	return nil
}

// PictureURL is where the picture behind key can be downloaded, for a
// page that shows it; "" when the store cannot say.
func (s *Server) PictureURL(ctx context.Context, u *storage.User) string {
	if p := s.profileOf(ctx, u); p.PictureURL != nil {
		return *p.PictureURL
	}
	return ""
}

// Bounds of a page's form that ReadForm reads, apart from its pictures:
// its text fields take no more than a form without a picture may.
const (
	maxFormText  = 64 << 10
	maxFormParts = 64
)

// ReadForm reads a page's form that may carry a picture, as POST /v1/users
// reads a signup: a multipart body's text fields (at most 64 KiB of them)
// go to r.PostForm and r.Form, as r.ParseMultipartForm would put them, and
// its file parts "picture" each to a file in the spool as they are read,
// within limit bytes; other file parts are skipped. Any other body is
// r.ParseForm's. Bound r.Body first (http.MaxBytesReader) and hold the
// upload budget (HoldBody). The caller closes the files, which removes
// them; on an error none is left. Too much text is an *http.MaxBytesError,
// like too large a body.
func (s *Server) ReadForm(r *http.Request, limit int64) (pictures []*picture.File, err error) {
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	// The query into r.Form (and, for a body that is not multipart, the
	// body into r.PostForm).
	if err := r.ParseForm(); err != nil || mt != "multipart/form-data" {
		return nil, err
	}
	if params["boundary"] == "" {
		return nil, http.ErrMissingBoundary
	}
	defer func() {
		if err != nil {
			ClosePictures(pictures)
			pictures = nil
		}
	}()
	mr := multipart.NewReader(r.Body, params["boundary"])
	text := int64(maxFormText)
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			return pictures, nil
		}
		if err == nil && n >= maxFormParts {
			err = errors.New("profile: too many parts in the form")
		}
		if err != nil {
			return pictures, err
		}
		name := part.FormName()
		switch {
		case name == "":
			// Not a form field: skipped, as ParseMultipartForm skips it.
		case part.FileName() == "":
			v, err := io.ReadAll(io.LimitReader(part, text+1))
			if err != nil {
				return pictures, err
			}
			if text -= int64(len(v)); text < 0 {
				return pictures, &http.MaxBytesError{Limit: maxFormText}
			}
			r.PostForm.Add(name, string(v))
			r.Form.Add(name, string(v))
		case name == "picture":
			f, err := s.spool(part, limit)
			if err != nil {
				return pictures, err
			}
			pictures = append(pictures, f)
		}
		// Whatever is left of the part (another file's bytes), NextPart
		// reads past without keeping.
	}
}

// ClosePictures closes and removes the pictures ReadForm returned.
func ClosePictures(pictures []*picture.File) {
	for _, f := range pictures {
		f.Close()
	}
}

// FormPicture is the upload of a page form's file input "picture", as
// ReadForm spooled it: none for a form without one (a browser sends the
// input without a file name when no file was chosen, which ReadForm keeps
// as an empty text field). More than one file is refused, as POST
// /v1/users refuses it.
func FormPicture(pictures []*picture.File) (src picture.Source, present bool, err error) {
	switch len(pictures) {
	case 0:
		return nil, false, nil
	case 1:
		return pictures[0], true, nil
	default:
		return nil, false, errors.New("profile: more than one picture")
	}
}
