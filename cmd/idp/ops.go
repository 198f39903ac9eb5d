package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// opsHandler is the operations listener (IDP_OPS_ADDR): what scrapers,
// probes and operators read. It is a listener of its own so that the
// metrics, which tell an attacker how the service is doing, and the
// profiler, whose profiles show memory contents and cost CPU, are never
// reachable through the public port. The health endpoints answer here and
// on the public port, so that probes may use either.
func (a *app) opsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", a.metrics.Handler())
	mux.HandleFunc("GET /healthz", handleHealthz)
	mux.HandleFunc("GET /readyz", a.handleReady)
	if a.cfg.OpsProfiler {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return recoverer(a.log)(mux)
}

// serveOps serves the operations handler on ln until ctx ends.
func (a *app) serveOps(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.opsHandler(),
		ReadHeaderTimeout: 5 * time.Second,
		// No write timeout: a CPU profile or trace streams for as long as
		// its ?seconds= asks.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 32 << 10,
		ErrorLog:       slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	defer stop()
	a.log.Info("operations listener", "addr", ln.Addr().String(), "profiler", a.cfg.OpsProfiler)
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// handleHealthz answers while the process runs (liveness).
func handleHealthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok\n"))
}
