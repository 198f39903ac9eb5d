package profile

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"

	"github.com/go-chi/chi/v5"

	"idp/passkey"
)

// Passkeys is the passkey store the /v1/passkeys routes manage (package
// passkey); nil when passkeys are off.
type Passkeys interface {
	BeginRegistration(ctx context.Context, userID int64) (json.RawMessage, error)
	FinishRegistration(ctx context.Context, userID int64, response []byte, name string) (passkey.Passkey, error)
	List(ctx context.Context, userID int64) ([]passkey.Passkey, error)
	Rename(ctx context.Context, userID int64, id, name string) (passkey.Passkey, error)
	Delete(ctx context.Context, userID int64, id string) error
}

// mountPasskeys adds /v1/passkeys to a group that requires a user's
// token with the scope profile.
func (s *Server) mountPasskeys(r chi.Router) {
	if s.passkeys == nil {
		return
	}
	r.With(s.limit("passkey-registration")).Post("/v1/passkeys/registration", s.handlePasskeyOptions)
	r.With(s.limit("passkey-create")).Post("/v1/passkeys", s.handlePasskeyCreate)
	r.Get("/v1/passkeys", s.handlePasskeyList)
	r.Patch("/v1/passkeys/{id}", s.handlePasskeyRename)
	r.Delete("/v1/passkeys/{id}", s.handlePasskeyDelete)
}

func (s *Server) handlePasskeyOptions(w http.ResponseWriter, r *http.Request) {
	opts, err := s.passkeys.BeginRegistration(r.Context(), principal(r).User.ID)
	if err != nil {
		s.passkeyFail(w, r, "begin passkey registration", err)
		return
	}
	writeJSON(w, http.StatusOK, opts)
}

func (s *Server) handlePasskeyCreate(w http.ResponseWriter, r *http.Request) {
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeProblem(w, problem(http.StatusUnsupportedMediaType, "unsupported-media-type", "Unsupported media type", "Send application/json."))
		return
	}
	raw, ok := readObject(w, r.Body)
	if !ok {
		return
	}
	f, errs := stringFields(raw, "name")
	if len(errs) > 0 {
		writeProblem(w, validationProblem(errs))
		return
	}
	delete(raw, "name")
	body, _ := json.Marshal(raw)
	p, err := s.passkeys.FinishRegistration(r.Context(), principal(r).User.ID, body, f["name"])
	if err != nil {
		s.passkeyFail(w, r, "finish passkey registration", err)
		return
	}
	s.cfg.ObserveEvent("passkey_added")
	writeJSON(w, http.StatusCreated, p)
}

func (s *Server) handlePasskeyList(w http.ResponseWriter, r *http.Request) {
	ps, err := s.passkeys.List(r.Context(), principal(r).User.ID)
	if err != nil {
		s.fail(w, r, "list passkeys", err)
		return
	}
	if ps == nil {
		ps = []passkey.Passkey{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"passkeys": ps})
}

func (s *Server) handlePasskeyRename(w http.ResponseWriter, r *http.Request) {
	f, ok := readJSONObject(w, r, "name")
	if !ok {
		return
	}
	p, err := s.passkeys.Rename(r.Context(), principal(r).User.ID, chi.URLParam(r, "id"), f["name"])
	if err != nil {
		s.passkeyFail(w, r, "rename passkey", err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

func (s *Server) handlePasskeyDelete(w http.ResponseWriter, r *http.Request) {
	if err := s.passkeys.Delete(r.Context(), principal(r).User.ID, chi.URLParam(r, "id")); err != nil {
		s.passkeyFail(w, r, "delete passkey", err)
		return
	}
	s.cfg.ObserveEvent("passkey_deleted")
	w.WriteHeader(http.StatusNoContent)
}

// passkeyFail answers the passkey store's errors: a refused ceremony is
// the client's (400, with the reason), anything else goes to fail.
func (s *Server) passkeyFail(w http.ResponseWriter, r *http.Request, what string, err error) {
	switch {
	case errors.Is(err, passkey.ErrNotFound):
		writeProblem(w, problem(http.StatusNotFound, "not-found", "No such passkey", "No passkey of yours has this id."))
	case errors.Is(err, passkey.ErrName):
		writeProblem(w, validationProblem([]FieldError{{Field: "name", Code: "invalid",
			Message: "A name is 1 to 64 characters without control characters."}}))
	case errors.Is(err, passkey.ErrChallenge):
		writeProblem(w, problem(http.StatusBadRequest, "passkey-challenge", "Unknown challenge",
			"The response answers no live registration challenge of yours; ask for new options."))
	case errors.Is(err, passkey.ErrRejected):
		writeProblem(w, problem(http.StatusBadRequest, "passkey-rejected", "Passkey refused", passkey.Reason(err)))
	default:
		s.fail(w, r, what, err)
	}
}
