package profile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"idp/account"
	"idp/oauth"
	"idp/password"
	"idp/picture"
	"idp/storage"
)

// Bounds of a signup request apart from its picture.
const (
	maxJSONBytes  = 64 << 10
	maxFieldBytes = 4 << 10
	maxParts      = 16
)

// signupScopes are requested for a new user, narrowed to what the client
// may have.
var signupScopes = []string{oauth.ScopeOpenID, oauth.ScopeProfile, oauth.ScopeEmail, oauth.ScopeOfflineAccess}

// signupFieldNames are the text fields a signup reads.
var signupFieldNames = []string{"username", "password", "email", "first_name", "last_name", "gender", "client_id", "client_secret"}

// signupRequest is a parsed signup body.
type signupRequest struct {
	fields signupFields
	form   url.Values // client_id and client_secret, for client authentication
	// picture is the raw upload, spooled within the byte limit and not
	// yet looked at: nothing of it is decoded before the client is
	// authenticated and the fields are valid.
	picture    *picture.File
	hasPicture bool
	errs       []FieldError // fields that are present but not strings or too long
}

func (s *Server) handleSignup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.ContentLength > s.MaxSignupBytes() {
		writeProblem(w, tooLarge(s.cfg.Pictures))
		return
	}
	release, ok := s.HoldBody(r, s.MaxSignupBytes())
	if !ok {
		pictureBusy(w)
		return
	}
	defer release()
	req, ok := s.readSignup(w, r)
	defer req.close()
	if !ok {
		return
	}
	// The client first: an unknown client or a wrong secret costs nothing
	// but this, whatever picture came with it.
	client, err := s.tokens.AuthenticateClient(ctx, r, req.form)
	if err != nil {
		var rfc *fosite.RFC6749Error
		if errors.As(err, &rfc) && rfc.CodeField >= 500 {
			s.log.ErrorContext(ctx, "signup: authenticate client", "err", err)
			unavailable(w, "Try again shortly.")
			return
		}
		w.Header().Set("WWW-Authenticate", `Basic realm="idp"`)
		writeProblem(w, problem(http.StatusUnauthorized, "invalid-client", "Client authentication failed",
			"Identify the app with client_id (and client_secret for a confidential client) as at the token endpoint."))
		return
	}
	if !client.GetGrantTypes().Has("password") {
		writeProblem(w, problem(http.StatusForbidden, "unauthorized-client", "Client may not sign users up",
			"This client is not registered for the password grant, whose tokens a signup returns."))
		return
	}

	in := SignupInput{
		Username: req.fields.Username, Password: req.fields.Password, Email: req.fields.Email,
		FirstName: req.fields.FirstName, LastName: req.fields.LastName, Gender: req.fields.Gender,
		HasPicture: req.hasPicture, Invalid: req.errs,
	}
	if req.hasPicture {
		in.Picture = req.picture
	}
	var body struct {
		User   Profile        `json:"user"`
		Tokens map[string]any `json:"tokens"`
	}
	_, err = s.CreateAccount(ctx, in, func(ctx context.Context, u *storage.User) error {
		var err error
		// The new login's user agent, for the list of live sessions.
		ctx = oauth.WithUserAgent(ctx, r.UserAgent())
		body.Tokens, err = s.tokens.IssueTokens(ctx, client, u.ID, signupScopes)
		body.User = s.profileOf(ctx, u)
		return err
	})
	if err != nil {
		s.signupFailed(w, r, err)
		return
	}
	w.Header().Set("Location", s.cfg.Issuer+"/v1/profile")
	writeJSON(w, http.StatusCreated, body)
}

// signupFailed answers an error of CreateAccount.
func (s *Server) signupFailed(w http.ResponseWriter, r *http.Request, err error) {
	var invalid *ValidationError
	var taken *TakenError
	switch {
	case errors.As(err, &invalid):
		writeProblem(w, validationProblem(invalid.Errors))
	case errors.As(err, &taken):
		writeProblem(w, takenProblem(taken.Fields...))
	case errors.Is(err, ErrPictureTooLarge):
		writeProblem(w, tooLarge(s.cfg.Pictures))
	case errors.Is(err, ErrNotImage):
		notAnImage(w)
	case errors.Is(err, errBusy):
		// The decoding queue's own wait ran out; a deadline of the
		// request is not "too many pictures" and goes to fail.
		pictureBusy(w)
	default:
		s.fail(w, r, "signup", err)
	}
}

// SignupInput is what a signup sends: the text fields as received (the
// password in the clear) and the picture as raw bytes, read within the
// byte limit and not yet looked at.
type SignupInput struct {
	Username, Password, Email, FirstName, LastName, Gender string
	// Picture is the upload when HasPicture is set (a spooled
	// *picture.File, which the caller closes after CreateAccount
	// returns); an empty or nil one is not an image.
	Picture    picture.Source
	HasPicture bool
	// Invalid are fields found bad while reading the request (not a
	// string, too long); they are reported with the others.
	Invalid []FieldError
}

// ValidationError lists the fields of a signup that break the rules of
// CONTRACT §3 (422).
type ValidationError struct{ Errors []FieldError }

func (e *ValidationError) Error() string {
	fields := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		fields[i] = fe.Field
	}
	return "profile: invalid fields: " + strings.Join(fields, ", ")
}

// TakenError names the fields of a signup, username or email or both,
// that another account already uses (409). errors.Is(err,
// account.ErrTaken) holds for it.
type TakenError struct {
	Fields []string
	err    error // the unique index's violation, when that told
}

func (e *TakenError) Error() string { return "profile: taken: " + strings.Join(e.Fields, ", ") }

// Is makes errors.Is(err, account.ErrTaken) true.
func (e *TakenError) Is(target error) bool { return target == account.ErrTaken }

func (e *TakenError) Unwrap() error { return e.err }

// Errors of a signup's picture.
var (
	// ErrPictureTooLarge: the upload exceeds the byte limit (413).
	ErrPictureTooLarge = errors.New("profile: the picture exceeds the size limit")
	// ErrNotImage: the upload is not a JPEG, PNG, GIF or WebP image (415).
	ErrNotImage = errors.New("profile: the picture is not a JPEG, PNG, GIF or WebP image")
)

// CreateAccount creates the account in, with its picture, as POST
// /v1/users and the "Create account" page do: the one implementation of
// both. inTx, when not nil, runs in the transaction that inserts the user
// (the API issues its tokens there); if it fails, the user is not created.
// A failed signup leaves nothing behind: no user row, no stored object.
//
// Its errors: *ValidationError for fields that break the rules (a picture
// too big in pixels among them), *TakenError for a username or email in
// use, ErrPictureTooLarge and ErrNotImage for the picture's bytes; anything
// else is the service's (busy, unavailable). The picture is checked, from
// its header, before the fields, and decoded only once they are valid and
// the names are free: the expensive steps come last.
func (s *Server) CreateAccount(ctx context.Context, in SignupInput, inTx func(ctx context.Context, u *storage.User) error) (*storage.User, error) {
	invalid := slices.Clone(in.Invalid)
	// Only the picture's header (a few bytes, nothing decoded) with the
	// fields, then, once the names are known to be free, the decode.
	var upload *picture.Upload
	if in.HasPicture {
		u, fe, err := s.inspect(in.Picture)
		if err != nil {
			return nil, err
		}
		if fe != nil {
			invalid = append(invalid, *fe)
		}
		upload = u
	}
	nu, errs := s.newUser(signupFields{
		Username: in.Username, Password: in.Password, Email: in.Email,
		FirstName: in.FirstName, LastName: in.LastName, Gender: in.Gender,
		// The input does not tell an absent field from an empty one; the
		// rules treat both alike.
		present: map[string]bool{"username": true, "password": true, "email": true,
			"first_name": true, "last_name": true, "gender": true},
	})
	if errs = append(invalid, errs...); len(errs) > 0 {
		return nil, &ValidationError{Errors: errs}
	}
	// A cheap look before the expensive hash and decode; the unique indexes
	// decide races.
	if taken, err := s.accounts.Taken(ctx, nu.Username, nu.Email); err != nil {
		return nil, fmt.Errorf("look up names: %w", err)
	} else if len(taken) > 0 {
		return nil, &TakenError{Fields: taken}
	}
	// The hash before the decode: a signup waiting for a hashing slot then
	// holds its picture in the spool, where a decoded one (the cleaned
	// image, a megabyte for a photo) would sit in the heap, outside every
	// budget, for as long as the queue takes; and a flood turned away by
	// the hashing queue costs no decode.
	var err error
	if nu.PasswordHash, err = s.accounts.Hasher().Hash(ctx, nu.Password); err != nil {
		return nil, fmt.Errorf("hash password: %w", err)
	}

	// The object is this request's own (a fresh key): if the user row is
	// not created, deleting it cannot touch anything another row names.
	var stored string
	if upload != nil {
		img, err := s.decodeUpload(ctx, upload)
		if err != nil {
			return nil, err
		}
		stored = picture.NewKey(img.ContentType)
		if err := s.pictures.Put(ctx, stored, img); err != nil {
			// The object may exist all the same (the store finished
			// writing it as the request ended): no row will name it.
			s.deletePicture(ctx, stored)
			return nil, fmt.Errorf("store picture: %w", err)
		}
		nu.PictureKey = stored
	}
	var created *storage.User
	err = s.accounts.InTx(ctx, func(ctx context.Context) error {
		u, err := s.accounts.Insert(ctx, nu)
		if err != nil {
			return err
		}
		// The code and its mail commit with the user, or neither does.
		if s.mailer != nil {
			if err := s.sendVerification(ctx, u); err != nil {
				return err
			}
		}
		if inTx != nil {
			if err := inTx(ctx, u); err != nil {
				return err
			}
		}
		created = u
		return nil
	})
	if err != nil {
		if stored != "" {
			s.deletePicture(ctx, stored)
		}
		var taken *account.TakenError
		if errors.As(err, &taken) {
			return nil, &TakenError{Fields: []string{taken.Field}, err: err}
		}
		return nil, fmt.Errorf("create user: %w", err)
	}
	return created, nil
}

func takenProblem(fields ...string) Problem {
	p := problem(http.StatusConflict, "taken", "Already taken", "An account already uses this username or email address.")
	for _, f := range fields {
		p.Errors = append(p.Errors, FieldError{Field: f, Code: "taken", Message: "Already in use."})
	}
	return p
}

// deletePicture removes an object that no row refers to (any more): one
// that this request stored and failed to link, or the one its update
// replaced. It runs
// even when the client has gone, and a failure is logged: the object is
// unreachable (its key is unguessable and nothing points at it) but takes
// space.
func (s *Server) deletePicture(ctx context.Context, key string) {
	ctx = context.WithoutCancel(ctx)
	if err := s.deletions.DeleteOrQueue(ctx, key); err != nil {
		s.log.WarnContext(ctx, "delete orphaned picture", "key", key, "err", err)
	}
}

// fail answers an error of a dependency: overload and outages are 503 with
// Retry-After, anything else a 500 whose cause is logged, not shown.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		// The request ran out of time, wherever it waited (the database,
		// a hashing slot, picture storage): the service, not the client,
		// is too slow now. Checked first, as the busy errors wrap it.
		s.log.WarnContext(r.Context(), what, "err", err)
		unavailable(w, "The service could not answer in time; try again shortly.")
	case errors.Is(err, password.ErrBusy), errors.Is(err, errBusy):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, problem(http.StatusServiceUnavailable, "busy", "Too busy", "Too many requests at once; retry shortly."))
	case errors.Is(err, picture.ErrUnavailable):
		s.log.ErrorContext(r.Context(), what, "err", err)
		unavailable(w, "Picture storage is unavailable; try again shortly, or sign up without a picture.")
	case errors.Is(err, errPictureChanged):
		writeProblem(w, problem(http.StatusConflict, "conflict", "Changed meanwhile", "The picture was changed by another request; read the profile and retry."))
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away; nobody reads the answer.
	default:
		s.log.ErrorContext(r.Context(), what, "err", err)
		unavailable(w, "Try again shortly.")
	}
}

// readSignup parses a JSON or multipart signup body within its bounds. It
// answers the request itself (and reports false) when the body cannot be
// read: 413 for too much, 415 for another media type or a picture that is
// not an image, 400 for a malformed body.
func (s *Server) readSignup(w http.ResponseWriter, r *http.Request) (signupRequest, bool) {
	lim := s.cfg.Pictures
	maxBody := s.MaxSignupBytes()
	if r.ContentLength > maxBody {
		writeProblem(w, tooLarge(lim))
		return signupRequest{}, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	req := signupRequest{fields: signupFields{present: map[string]bool{}}, form: url.Values{}}
	set := func(name, v string) {
		if req.fields.present[name] {
			return // the first value counts
		}
		req.fields.present[name] = true
		switch name {
		case "username":
			req.fields.Username = v
		case "password":
			req.fields.Password = v
		case "email":
			req.fields.Email = v
		case "first_name":
			req.fields.FirstName = v
		case "last_name":
			req.fields.LastName = v
		case "gender":
			req.fields.Gender = v
		case "client_id", "client_secret":
			req.form.Set(name, v)
		}
	}

	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mt {
	case "application/json":
		raw, ok := readObject(w, r.Body)
		if !ok {
			return req, false
		}
		fields, errs := stringFields(raw, signupFieldNames...)
		for _, e := range errs {
			req.fields.present[e.Field] = true
		}
		req.errs = append(req.errs, errs...)
		for _, name := range signupFieldNames {
			if v, ok := fields[name]; ok {
				set(name, v)
			}
		}
		return req, true

	case "multipart/form-data":
		mr := multipart.NewReader(r.Body, params["boundary"])
		for n := 0; ; n++ {
			part, err := mr.NextPart()
			if err == io.EOF {
				return req, true
			}
			if err != nil || n >= maxParts {
				writeProblem(w, badBody(err))
				return req, false
			}
			name := part.FormName()
			if name == "picture" {
				if req.hasPicture {
					writeProblem(w, problem(http.StatusBadRequest, "malformed", "Malformed body", "Send one picture."))
					return req, false
				}
				f, err := s.spool(part, lim.MaxBytes)
				if !s.readPictureError(w, err) {
					return req, false
				}
				req.picture, req.hasPicture = f, true
				continue
			}
			if !slices.Contains(signupFieldNames, name) {
				continue // ignored, as unknown JSON members are
			}
			v, err := io.ReadAll(io.LimitReader(part, maxFieldBytes+1))
			if err != nil {
				writeProblem(w, badBody(err))
				return req, false
			}
			if len(v) > maxFieldBytes {
				req.errs = append(req.errs, FieldError{Field: name, Code: "too_long", Message: "At most 4 KiB."})
				req.fields.present[name] = true
				continue
			}
			set(name, string(v))
		}

	default:
		writeProblem(w, problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type",
			"Send application/json, or multipart/form-data with a picture."))
		return req, false
	}
}

// close removes the spooled picture, if any.
func (req signupRequest) close() {
	if req.picture != nil {
		req.picture.Close()
	}
}

// MaxSignupBytes bounds the body of a signup: the picture's limit, the
// text fields, and room for the multipart framing.
func (s *Server) MaxSignupBytes() int64 {
	return s.cfg.Pictures.MaxBytes + maxParts*maxFieldBytes + 16<<10
}

// PasswordMinLength is the shortest password, in characters, that signup
// and reset accept.
func (s *Server) PasswordMinLength() int { return s.cfg.PasswordMinLength }

// readPictureError answers the request and reports false when reading the
// raw picture failed: 413 past the byte limit, 503 when the spool failed
// (the disk is full, say), 400 for a broken body.
func (s *Server) readPictureError(w http.ResponseWriter, err error) bool {
	var tooBig *http.MaxBytesError
	var spoolErr *os.PathError
	switch {
	case err == nil:
		return true
	case errors.Is(err, picture.ErrTooLarge), errors.As(err, &tooBig):
		writeProblem(w, tooLarge(s.cfg.Pictures))
	case errors.As(err, &spoolErr):
		s.log.Error("spool picture", "err", err)
		unavailable(w, "Try again shortly.")
	default:
		writeProblem(w, badBody(err))
	}
	return false
}

// inspectPicture reads the header of a raw upload, decoding nothing. It
// answers the request and reports false for an upload that is not an image
// (415); an image too big in pixels or decoded bytes is a field error (422)
// added to errs, reported with the others.
func (s *Server) inspectPicture(w http.ResponseWriter, src picture.Source, errs *[]FieldError) (*picture.Upload, bool) {
	u, fe, err := s.inspect(src)
	switch {
	case errors.Is(err, ErrPictureTooLarge):
		writeProblem(w, tooLarge(s.cfg.Pictures))
		return nil, false
	case errors.Is(err, ErrNotImage):
		notAnImage(w)
		return nil, false
	case err != nil:
		s.log.Error("inspect picture", "err", err)
		unavailable(w, "Try again shortly.")
		return nil, false
	case fe != nil:
		*errs = append(*errs, *fe)
		return nil, true
	}
	return u, true
}

// tooManyPixels is the field error of a picture too big in pixels or
// decoded bytes.
var tooManyPixels = FieldError{Field: "picture", Code: "too_many_pixels", Message: "Neither side may exceed the maximum number of pixels, nor the image its decoded size."}

// inspect reads the header of a raw upload (nil: an empty one), decoding
// nothing: an upload to decode, which reads src again, or a field error
// for an image too big in pixels or decoded bytes, or ErrPictureTooLarge
// or ErrNotImage.
func (s *Server) inspect(src picture.Source) (*picture.Upload, *FieldError, error) {
	if src == nil {
		src = bytes.NewReader(nil)
	}
	u, err := picture.InspectAt(src, s.cfg.Pictures)
	var pe *os.PathError
	switch {
	case errors.As(err, &pe):
		// The spool failed, not the picture.
		return nil, nil, fmt.Errorf("inspect picture: %w", err)
	case err == nil:
		return u, nil, nil
	case errors.Is(err, picture.ErrDimensions):
		fe := tooManyPixels
		return nil, &fe, nil
	case errors.Is(err, picture.ErrTooLarge):
		return nil, nil, fmt.Errorf("%w: %w", ErrPictureTooLarge, err)
	default:
		return nil, nil, fmt.Errorf("%w: %w", ErrNotImage, err)
	}
}

// decodePicture decodes an inspected upload within the decoding slots and
// the memory budget. It answers the request and reports false when that
// fails: 503 while busy, 415 for pixel data that does not decode.
func (s *Server) decodePicture(w http.ResponseWriter, r *http.Request, u *picture.Upload) (picture.Image, bool) {
	img, err := s.decodeUpload(r.Context(), u)
	var invalid *ValidationError
	switch {
	case err == nil:
		return img, true
	case errors.Is(err, errBusy):
		// The decoding queue's own wait ran out; a deadline of the
		// request is not "too many pictures" and goes to fail.
		pictureBusy(w)
	case errors.Is(err, ErrNotImage):
		notAnImage(w)
	case errors.As(err, &invalid):
		writeProblem(w, validationProblem(invalid.Errors))
	default:
		s.fail(w, r, "decode picture", err)
	}
	return picture.Image{}, false
}

// decodeUpload decodes an inspected upload within the decoding slots and
// the memory budget: errBusy while they stay taken, ErrNotImage for pixel
// data that does not decode, a *ValidationError for an image too big.
func (s *Server) decodeUpload(ctx context.Context, u *picture.Upload) (picture.Image, error) {
	img, err := s.process(ctx, u)
	switch {
	case err == nil:
		return img, nil
	case errors.Is(err, errBusy):
		return picture.Image{}, err
	case errors.Is(err, picture.ErrNotImage):
		return picture.Image{}, fmt.Errorf("%w: %w", ErrNotImage, err)
	case errors.Is(err, picture.ErrDimensions):
		return picture.Image{}, &ValidationError{Errors: []FieldError{tooManyPixels}}
	default:
		return picture.Image{}, fmt.Errorf("decode picture: %w", err)
	}
}

func pictureBusy(w http.ResponseWriter) {
	w.Header().Set("Retry-After", "1")
	writeProblem(w, problem(http.StatusServiceUnavailable, "busy", "Too busy", "Too many pictures at once; retry shortly."))
}

func notAnImage(w http.ResponseWriter) {
	p := problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Not an image", "The picture must be a JPEG, PNG, GIF or WebP image.")
	p.Errors = []FieldError{{Field: "picture", Code: "unsupported_type", Message: "Not a JPEG, PNG, GIF or WebP image."}}
	writeProblem(w, p)
}

func tooLarge(lim picture.Limits) Problem {
	p := problem(http.StatusRequestEntityTooLarge, "too-large", "Picture too large", "The picture exceeds the size limit.")
	p.Errors = []FieldError{{Field: "picture", Code: "too_large", Message: "The picture exceeds the size limit."}}
	return p
}

func badBody(err error) Problem {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return problem(http.StatusRequestEntityTooLarge, "too-large", "Body too large", "The request body exceeds the limit.")
	}
	return problem(http.StatusBadRequest, "malformed", "Malformed body", "The body could not be read as the declared media type.")
}
