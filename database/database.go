// Package database opens the SQL database behind idp, MySQL or PostgreSQL in
// production or SQLite as the embedded default, and wraps it in the ent
// client.
package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"entgo.io/ent/dialect"
	entsql "entgo.io/ent/dialect/sql"
	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"idp/ent"
	"idp/ent/migrate"
)

// DB is an open database: the ent client for typed access and the underlying
// *sql.DB for the few queries ent does not express well (streaming, pool
// statistics).
type DB struct {
	Ent     *ent.Client
	SQL     *sql.DB
	Dialect string // dialect.MySQL, dialect.Postgres or dialect.SQLite
}

// Open connects to the database named by rawURL:
//
//	mysql://user:password@host:3306/dbname?param=value
//	postgres://user:password@host:5432/dbname?param=value  (or postgresql://)
//	sqlite:///absolute/path/idp.db  or  sqlite:relative/path/idp.db
//
// Open checks that the database answers; it does not migrate.
func Open(ctx context.Context, rawURL string, opts ...Option) (*DB, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	dsn, dia, err := dataSource(rawURL)
	if err != nil {
		return nil, err
	}
	var sqlDB *sql.DB
	switch dia {
	case dialect.SQLite:
		if err := os.MkdirAll(filepath.Dir(sqlitePath(rawURL)), 0o700); err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
		sqlDB = sql.OpenDB(cachingConnector{sqliteConnector{dsn: dsn, drv: &sqlite.Driver{}}, sqliteCachedStmts})
	case dialect.MySQL:
		cfg, err := mysql.ParseDSN(dsn)
		if err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
		// The driver logs what it also returns as errors, to stderr by
		// default; its lines go to the service log, at debug level.
		cfg.Logger = driverLog{o.logger}
		conn, err := mysql.NewConnector(cfg)
		if err != nil {
			return nil, fmt.Errorf("database: %w", err)
		}
		sqlDB = sql.OpenDB(cachingConnector{conn, mysqlCachedStmts})
	case dialect.Postgres:
		cfg, err := postgresConfig(rawURL)
		if err != nil {
			return nil, err
		}
		// No cachingConnector: pgx keeps each connection's prepared
		// statements itself (see stmtcache.go).
		sqlDB = sql.OpenDB(stdlib.GetConnector(*cfg))
	}
	configurePool(sqlDB, dia)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pingCtx); err != nil {
		sqlDB.Close()
		return nil, fmt.Errorf("database: connect to %s: %w", Redact(rawURL), err)
	}
	var drv dialect.Driver = entsql.OpenDB(dia, sqlDB)
	if dia == dialect.SQLite {
		drv = newSerialWrites(drv)
	}
	return &DB{Ent: ent.NewClient(ent.Driver(drv)), SQL: sqlDB, Dialect: dia}, nil
}

// Option configures Open.
type Option func(*options)

type options struct{ logger *slog.Logger }

// WithLogger sends the database driver's own messages to l.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// driverLog adapts slog to the MySQL driver's logger.
type driverLog struct{ l *slog.Logger }

func (d driverLog) Print(v ...any) {
	if d.l != nil {
		d.l.Debug("mysql driver: " + fmt.Sprint(v...))
	}
}

// Migrate brings the schema up to date. It adds tables, columns and
// indexes and drops nothing the code still knows, so an older binary keeps
// working against a newer schema during a rolling update; the one
// exception is retiredTables.
func (db *DB) Migrate(ctx context.Context) error {
	if err := db.Ent.Schema.Create(ctx, migrate.WithForeignKeys(true)); err != nil {
		return fmt.Errorf("database: migrate: %w", err)
	}
	for _, t := range retiredTables {
		if _, err := db.SQL.ExecContext(ctx, "DROP TABLE IF EXISTS "+t); err != nil {
			return fmt.Errorf("database: migrate: drop retired table %s: %w", t, err)
		}
	}
	return nil
}

// retiredTables are tables no build since their retirement reads, dropped
// by Migrate because what they hold would otherwise outlive the account
// erasure, which no longer knows them. refresh_tokens held one row per
// refresh before the one-row-per-login refresh_chains (before the first
// release); the tokens it backed are refused by the builds after it anyway.
var retiredTables = []string{"refresh_tokens"}

// Ping reports whether the database answers.
func (db *DB) Ping(ctx context.Context) error { return db.SQL.PingContext(ctx) }

// Close closes the connection pool.
func (db *DB) Close() error { return db.Ent.Close() }

func configurePool(db *sql.DB, dia string) {
	n := 4 * runtime.GOMAXPROCS(0)
	if dia == dialect.SQLite {
		// SQLite serialises writers on the file lock (transactions begin
		// IMMEDIATE); extra connections only add readers.
		n = max(4, 2*runtime.GOMAXPROCS(0))
	}
	db.SetMaxOpenConns(n)
	db.SetMaxIdleConns(n)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(time.Hour)
}

// dataSource turns the configured URL into a DSN and its dialect.
func dataSource(rawURL string) (dsn, dia string, err error) {
	scheme, _, ok := strings.Cut(rawURL, ":")
	if !ok {
		return "", "", errors.New("database: URL has no scheme (want mysql://, postgres:// or sqlite:)")
	}
	switch scheme {
	case "mysql":
		dsn, err := mysqlDSN(rawURL)
		return dsn, dialect.MySQL, err
	case "postgres", "postgresql":
		return rawURL, dialect.Postgres, nil
	case "sqlite":
		path := sqlitePath(rawURL)
		if path == "" {
			return "", "", errors.New("database: sqlite URL has no path")
		}
		return SQLiteDSN(path), dialect.SQLite, nil
	default:
		return "", "", fmt.Errorf("database: unsupported scheme %q (want mysql, postgres or sqlite)", scheme)
	}
}

// SQLiteDSN is the modernc.org/sqlite data source for a database file, with
// the settings idp relies on: foreign keys on, WAL so readers never wait for
// the writer, a busy timeout instead of immediate SQLITE_BUSY, and
// transactions that take the write lock when they begin, so two writers queue
// instead of deadlocking on a lock upgrade.
func SQLiteDSN(path string) string {
	q := url.Values{}
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Set("_txlock", "immediate")
	q.Set("_time_format", "sqlite")
	return "file:" + path + "?" + q.Encode()
}

func sqlitePath(rawURL string) string {
	rest := strings.TrimPrefix(rawURL, "sqlite:")
	rest = strings.TrimPrefix(rest, "//")
	rest, _, _ = strings.Cut(rest, "?")
	return rest
}

func mysqlDSN(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("database: bad mysql URL: %w", errors.Unwrap(err))
	}
	cfg := mysql.NewConfig()
	cfg.Net = "tcp"
	cfg.Addr = u.Host
	if u.Port() == "" {
		cfg.Addr = net.JoinHostPort(u.Hostname(), "3306")
	}
	if u.User != nil {
		cfg.User = u.User.Username()
		cfg.Passwd, _ = u.User.Password()
	}
	cfg.DBName = strings.TrimPrefix(u.Path, "/")
	if cfg.DBName == "" {
		return "", errors.New("database: mysql URL names no database")
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	// Statements run prepared from each connection's cache (stmtcache.go);
	// those past its bound would otherwise be three round trips each
	// (prepare, execute, close). Client-side interpolation is safe with
	// utf8mb4, the only connection character set idp uses.
	cfg.InterpolateParams = true
	// A database that stops answering must fail requests in bounded time,
	// not hang them: dial, read and write deadlines below the request
	// deadline. URL parameters override them.
	cfg.Timeout = 5 * time.Second
	cfg.ReadTimeout = 30 * time.Second
	cfg.WriteTimeout = 30 * time.Second
	cfg.Collation = "utf8mb4_unicode_ci"
	cfg.Params = map[string]string{}
	for k, v := range u.Query() {
		switch k {
		case "tls":
			cfg.TLSConfig = v[0]
		case "timeout", "readTimeout", "writeTimeout":
			d, err := time.ParseDuration(v[0])
			if err != nil {
				return "", fmt.Errorf("database: %s: %w", k, err)
			}
			switch k {
			case "timeout":
				cfg.Timeout = d
			case "readTimeout":
				cfg.ReadTimeout = d
			default:
				cfg.WriteTimeout = d
			}
		default:
			cfg.Params[k] = v[0]
		}
	}
	return cfg.FormatDSN(), nil
}

// postgresConfig parses a postgres:// URL with pgx's rules (libpq's
// parameters: sslmode, connect_timeout, application_name, …).
func postgresConfig(rawURL string) (*pgx.ConnConfig, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("database: bad postgres URL: %w", errors.Unwrap(err))
	}
	if strings.TrimPrefix(u.Path, "/") == "" {
		return nil, errors.New("database: postgres URL names no database")
	}
	cfg, err := pgx.ParseConfig(rawURL)
	if err != nil {
		// pgx's message quotes the URL, hiding the password only on a
		// best-effort basis: name the URL here, and pass on only the cause.
		if cause := errors.Unwrap(err); cause != nil {
			return nil, fmt.Errorf("database: bad postgres URL %s: %w", Redact(rawURL), cause)
		}
		return nil, fmt.Errorf("database: bad postgres URL %s", Redact(rawURL))
	}
	// As for MySQL, a server that does not answer must fail in bounded
	// time: connect_timeout in the URL overrides this. Queries are bounded
	// by their context (pgx cancels them on the server when it ends), and
	// lost peers by TCP keepalive.
	if !u.Query().Has("connect_timeout") {
		cfg.ConnectTimeout = 5 * time.Second
	}
	return cfg, nil
}

// Redact removes passwords from a database URL so that it can be logged:
// the user's, and parameters that hold one (libpq's password and
// sslpassword). A URL that does not parse keeps neither its user part
// nor its query.
func Redact(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		s := rawURL
		if i := strings.LastIndex(s, "@"); i >= 0 {
			s = "…" + s[i:]
		}
		if i := strings.IndexByte(s, '?'); i >= 0 {
			s = s[:i] + "?…"
		}
		return s
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	q, masked := u.Query(), false
	for k := range q {
		if strings.Contains(strings.ToLower(k), "password") {
			q.Set(k, "xxxxx")
			masked = true
		}
	}
	if masked {
		u.RawQuery = q.Encode()
	}
	return u.String()
}
