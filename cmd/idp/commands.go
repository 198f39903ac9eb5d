package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"idp/keys"
	"idp/oauth"
)

// newLogger writes JSON lines to w.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(requestIDHandler{slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})})
}

// setup parses the configuration of a command; extra adds the command's own
// flags.
func setup(name string, args []string, getenv func(string) string, stderr io.Writer, extra func(*flag.FlagSet)) (config, *slog.Logger, error) {
	fs := flag.NewFlagSet("idp "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	if extra != nil {
		extra(fs)
	}
	cfg, err := parseConfig(fs, args, getenv)
	if err != nil {
		return cfg, nil, err
	}
	return cfg, newLogger(stderr, cfg.LogLevel), nil
}

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, log, err := setup("serve", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	// Password hashes are the big allocations: each takes the argon2
	// memory and drops it. A soft limit above their budget makes the
	// garbage collector return that memory before the heap doubles, so a
	// login flood stays within the budget plus the rest of the server.
	if getenv("GOMEMLIMIT") == "" {
		limit := a.accounts.Hasher().MemoryBudget() + 100<<20
		debug.SetMemoryLimit(limit)
		log.Info("memory limit", "bytes", limit)
	}
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("IDP_HTTP_ADDR: %w", err)
	}
	if cfg.DebugAddr != "" {
		dln, err := net.Listen("tcp", cfg.DebugAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("IDP_DEBUG_ADDR: %w", err)
		}
		dctx, stopDebug := context.WithCancel(ctx)
		defer stopDebug()
		go func() {
			if err := serveDebug(dctx, dln, log); err != nil {
				log.Error("debug listener", "err", err)
			}
		}()
	}
	return a.serve(ctx, ln)
}

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, log, err := setup("migrate", args, getenv, stderr, nil)
	if err != nil {
		return err
	}
	db, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	fmt.Fprintln(stdout, "schema is up to date")
	return nil
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func cmdClientCreate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		id, grants, scopes, audience string
		public                       bool
		redirects                    listFlag
	)
	cfg, log, err := setup("client create", args, getenv, stderr, func(fs *flag.FlagSet) {
		fs.StringVar(&id, "id", "", "client id (required)")
		fs.BoolVar(&public, "public", false, "a public client (a mobile app): no secret")
		fs.StringVar(&grants, "grant-types", "", "comma-separated grant types: "+strings.Join(oauth.SupportedGrantTypes, ", "))
		fs.StringVar(&scopes, "scopes", "", "space-separated scopes: "+strings.Join(oauth.SupportedScopes, " "))
		fs.StringVar(&audience, "audience", "", "space-separated audiences the client may request")
		fs.Var(&redirects, "redirect-uri", "redirect URI (repeatable)")
	})
	if err != nil {
		return err
	}
	db, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	secret, err := oauth.NewClients(db.Ent, 0).Create(ctx, oauth.NewClient{
		ID:           id,
		Public:       public,
		GrantTypes:   splitList(grants, ","),
		Scopes:       strings.Fields(scopes),
		Audience:     strings.Fields(audience),
		RedirectURIs: redirects,
	})
	if err != nil {
		return err
	}
	out := map[string]string{"client_id": id}
	if secret != "" {
		out["client_secret"] = secret
	}
	enc := json.NewEncoder(stdout)
	return enc.Encode(out)
}

func splitList(s, sep string) []string {
	var out []string
	for p := range strings.SplitSeq(s, sep) {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// withKeys runs a keys command: its configuration, the database and the
// key manager.
func withKeys(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer,
	flags func(*flag.FlagSet), run func(km *keys.Manager) error) error {
	cfg, log, err := setup(name, args, getenv, stderr, flags)
	if err != nil {
		return err
	}
	db, err := openDB(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	km, err := newKeyManager(cfg, db, log)
	if err != nil {
		return err
	}
	return run(km)
}

func cmdKeysList(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var asJSON bool
	flags := func(fs *flag.FlagSet) { fs.BoolVar(&asJSON, "json", false, "print JSON") }
	return withKeys(ctx, "keys list", args, getenv, stderr, flags, func(km *keys.Manager) error {
		return listKeys(ctx, km, asJSON, stdout)
	})
}

func listKeys(ctx context.Context, km *keys.Manager, asJSON bool, stdout io.Writer) error {
	list, err := km.List(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(list)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KID\tSTATE\tBITS\tCREATED\tACTIVE FROM\tRETIRED\tREMOVED AFTER")
	for _, k := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", k.ID, k.State, k.Bits,
			stamp(&k.CreatedAt), stamp(cmp.Or(k.ActivatedAt, &k.ActivatesAt)), stamp(k.RetiredAt), stamp(k.RemoveAfter))
	}
	return tw.Flush()
}

func cmdKeysRotate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var now bool
	flags := func(fs *flag.FlagSet) {
		fs.BoolVar(&now, "now", false, "switch to the new key at once (for a compromised key: verifiers with a cached key set must refetch)")
	}
	return withKeys(ctx, "keys rotate", args, getenv, stderr, flags, func(km *keys.Manager) error {
		if err := km.Load(ctx); err != nil {
			return err
		}
		k, err := km.Rotate(ctx, now)
		if err != nil {
			return err
		}
		if now {
			fmt.Fprintf(stdout, "key %s signs now\n", k.ID)
		} else {
			fmt.Fprintf(stdout, "key %s is published and signs from %s\n", k.ID, k.ActivatesAt.UTC().Format(time.RFC3339))
		}
		return nil
	})
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
