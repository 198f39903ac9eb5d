package profile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"

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

// ReplacePicture makes data, an uploaded image already bounded by the
// caller, u's picture, as PUT /v1/profile/picture does: checked by its
// header first, decoded within the shared budget, cleaned and stored, and
// the old object deleted. Errors: ErrPictureTooLarge, ErrNotImage, a
// *ValidationError (too many pixels), ErrPicturesBusy, or the store's.
func (s *Server) ReplacePicture(ctx context.Context, u *storage.User, data []byte) (*storage.User, error) {
	if int64(len(data)) > s.cfg.Pictures.MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrPictureTooLarge, len(data))
	}
	upload, fe, err := s.inspect(data)
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
	key := picture.NewKey(img.ContentType)
	if err := s.pictures.Put(ctx, key, img); err != nil {
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

// FormPicture reads the upload of a page form's file input "picture",
// within the bound the caller put on the body. A browser sends the input
// even when no file was chosen, with neither a name nor bytes: that is no
// picture. More than one file is refused, as POST /v1/users refuses it.
func FormPicture(files []*multipart.FileHeader) (data []byte, present bool, err error) {
	if len(files) == 0 || len(files) == 1 && files[0].Filename == "" && files[0].Size == 0 {
		return nil, false, nil
	}
	if len(files) > 1 {
		return nil, false, errors.New("profile: more than one picture")
	}
	f, err := files[0].Open()
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	if data, err = io.ReadAll(f); err != nil {
		return nil, false, err
	}
	return data, true, nil
}
