package profile

import (
	"context"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"

	"github.com/ory/fosite"

	"idp/account"
	"idp/database"
	"idp/oauth"
	"idp/password"
	"idp/picture"
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
	// picture is the raw upload, read within the byte limit and not yet
	// looked at: nothing of it is decoded before the client is
	// authenticated and the fields are valid.
	picture    []byte
	hasPicture bool
	errs       []FieldError // fields that are present but not strings or too long
}

func (s *Server) handleSignup(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	req, ok := s.readSignup(w, r)
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

	// Only now the picture: its header (a few bytes, nothing decoded) with
	// the fields, then, once the names are known to be free, the decode.
	var upload *picture.Upload
	if req.hasPicture {
		var ok bool
		if upload, ok = s.inspectPicture(w, req.picture, &req.errs); !ok {
			return
		}
	}
	nu, errs := s.newUser(req.fields)
	if errs = append(req.errs, errs...); len(errs) > 0 {
		writeProblem(w, validationProblem(errs))
		return
	}
	// A cheap look before the expensive decode and hash; the unique indexes
	// decide races.
	if taken, err := s.accounts.Taken(ctx, nu.Username, nu.Email); err != nil {
		s.fail(w, r, "signup: look up names", err)
		return
	} else if len(taken) > 0 {
		writeProblem(w, takenProblem(taken...))
		return
	}
	var img picture.Image
	if upload != nil {
		if img, ok = s.decodePicture(w, r, upload); !ok {
			return
		}
	}
	if nu.PasswordHash, err = s.accounts.Hasher().Hash(ctx, nu.Password); err != nil {
		s.fail(w, r, "signup: hash password", err)
		return
	}

	// The object is this request's own (a fresh key): if the user row is
	// not created, deleting it cannot touch anything another row names.
	var stored string
	if upload != nil {
		stored = picture.NewKey(img.ContentType)
		if err := s.pictures.Put(ctx, stored, img); err != nil {
			s.fail(w, r, "signup: store picture", err)
			return
		}
		nu.PictureKey = stored
	}
	var body struct {
		User   Profile        `json:"user"`
		Tokens map[string]any `json:"tokens"`
	}
	err = database.InTx(ctx, s.db.Ent, func(ctx context.Context) error {
		u, err := s.accounts.Insert(ctx, nu)
		if err != nil {
			return err
		}
		body.Tokens, err = s.tokens.IssueTokens(ctx, client, u.ID, signupScopes)
		body.User = s.profileOf(ctx, u)
		return err
	})
	if err != nil {
		if stored != "" {
			s.deletePicture(ctx, stored)
		}
		var taken *account.TakenError
		if errors.As(err, &taken) {
			writeProblem(w, takenProblem(taken.Field))
			return
		}
		s.fail(w, r, "signup: create user", err)
		return
	}
	w.Header().Set("Location", s.cfg.Issuer+"/v1/profile")
	writeJSON(w, http.StatusCreated, body)
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
	if err := s.pictures.Delete(ctx, key); err != nil {
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
	maxBody := lim.MaxBytes + maxParts*maxFieldBytes + 16<<10
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
				data, err := picture.Read(part, lim)
				if !s.readPictureError(w, err) {
					return req, false
				}
				req.picture, req.hasPicture = data, true
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

// readPictureError answers the request and reports false when reading the
// raw picture failed: 413 past the byte limit, 400 for a broken body.
func (s *Server) readPictureError(w http.ResponseWriter, err error) bool {
	var tooBig *http.MaxBytesError
	switch {
	case err == nil:
		return true
	case errors.Is(err, picture.ErrTooLarge), errors.As(err, &tooBig):
		writeProblem(w, tooLarge(s.cfg.Pictures))
	default:
		writeProblem(w, badBody(err))
	}
	return false
}

// inspectPicture reads the header of a raw upload, decoding nothing. It
// answers the request and reports false for an upload that is not an image
// (415); an image too big in pixels or decoded bytes is a field error (422)
// added to errs, reported with the others.
func (s *Server) inspectPicture(w http.ResponseWriter, data []byte, errs *[]FieldError) (*picture.Upload, bool) {
	u, err := picture.Inspect(data, s.cfg.Pictures)
	switch {
	case err == nil:
		return u, true
	case errors.Is(err, picture.ErrDimensions):
		*errs = append(*errs, FieldError{Field: "picture", Code: "too_many_pixels", Message: "Neither side may exceed the maximum number of pixels, nor the image its decoded size."})
		return nil, true
	case errors.Is(err, picture.ErrTooLarge):
		writeProblem(w, tooLarge(s.cfg.Pictures))
		return nil, false
	default:
		notAnImage(w)
		return nil, false
	}
}

// decodePicture decodes an inspected upload within the decoding slots and
// the memory budget. It answers the request and reports false when that
// fails: 503 while busy, 415 for pixel data that does not decode.
func (s *Server) decodePicture(w http.ResponseWriter, r *http.Request, u *picture.Upload) (picture.Image, bool) {
	img, err := s.process(r.Context(), u)
	switch {
	case err == nil:
		return img, true
	case errors.Is(err, errBusy):
		// The decoding queue's own wait ran out; a deadline of the
		// request is not "too many pictures" and goes to fail.
		w.Header().Set("Retry-After", "1")
		writeProblem(w, problem(http.StatusServiceUnavailable, "busy", "Too busy", "Too many pictures at once; retry shortly."))
	case errors.Is(err, picture.ErrNotImage):
		notAnImage(w)
	case errors.Is(err, picture.ErrDimensions):
		writeProblem(w, validationProblem([]FieldError{{Field: "picture", Code: "too_many_pixels", Message: "Neither side may exceed the maximum number of pixels, nor the image its decoded size."}}))
	default:
		s.fail(w, r, "decode picture", err)
	}
	return picture.Image{}, false
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
