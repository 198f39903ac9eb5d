package profile

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// FieldError is one entry of a problem's "errors": what is wrong with one
// field, as a stable code for programs and a message for people.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Problem is an RFC 9457 problem detail.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
}

// problemType is the base of this API's problem type URIs. They identify the
// kind of problem; RFC 9457 does not require them to resolve.
const problemType = "https://idp.dev/problems/"

// The problems of the user API.
func problem(status int, kind, title, detail string) Problem {
	return Problem{Type: problemType + kind, Title: title, Status: status, Detail: detail}
}

func validationProblem(errs []FieldError) Problem {
	p := problem(http.StatusUnprocessableEntity, "validation", "Invalid fields", "One or more fields are invalid; see errors.")
	p.Errors = errs
	return p
}

// Unrouted answers a request under /v1 that no route takes: status is 404
// (no such path) or 405 (the path takes other methods, which the caller
// has named in Allow).
func Unrouted(w http.ResponseWriter, status int) {
	if status == http.StatusMethodNotAllowed {
		writeProblem(w, problem(status, "method-not-allowed", "Method not allowed", "This path does not take that method; see Allow."))
		return
	}
	writeProblem(w, problem(http.StatusNotFound, "not-found", "Not found", "There is nothing at this path."))
}

func writeProblem(w http.ResponseWriter, p Problem) {
	body, _ := json.Marshal(p)
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(p.Status)
	w.Write(body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, problem(http.StatusInternalServerError, "internal", "Internal error", ""))
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// unavailable answers a failing dependency (the database, picture storage)
// with 503 and a hint to retry, never with the cause.
func unavailable(w http.ResponseWriter, detail string) {
	w.Header().Set("Retry-After", "5")
	writeProblem(w, problem(http.StatusServiceUnavailable, "unavailable", "Service unavailable", detail))
}
