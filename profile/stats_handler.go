package profile

import (
	"net/http"
)

// statsBatch is how many ids each query of the stats stream reads.
const statsBatch = 10_000

// startedWriter records whether the response has begun.
type startedWriter struct {
	http.ResponseWriter
	started bool
}

func (w *startedWriter) Write(b []byte) (int, error) {
	if !w.started {
		w.started = true
		w.ResponseWriter.Header().Set("Content-Type", "application/json")
		w.ResponseWriter.Header().Set("Cache-Control", "no-store")
	}
	return w.ResponseWriter.Write(b)
}

// handleStats streams every user id with the gender counts. A failure
// before the first byte is a 503 problem; after it, the status is already
// sent, so the connection is cut: a truncated body is invalid JSON, which a
// client cannot mistake for a complete answer.
func (s *Server) handleStats(w http.ResponseWriter, r *http.Request) {
	sw := &startedWriter{ResponseWriter: w}
	if err := WriteStats(r.Context(), s.stats, sw, statsBatch); err != nil {
		if r.Context().Err() != nil {
			return
		}
		s.log.ErrorContext(r.Context(), "stats", "err", err)
		if !sw.started {
			unavailable(w, "Try again shortly.")
			return
		}
		panic(http.ErrAbortHandler)
	}
}
