package database

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// CreateDatabase creates the empty database name on the MySQL or
// PostgreSQL server that serverURL names (mysql:// or postgres:// as Open
// takes them; the URL's own database need not exist) and returns the new
// database's URL and a func that drops it. It is for the tests and the load
// generator, which want a fresh database per run; idp itself never creates
// or drops databases.
func CreateDatabase(ctx context.Context, serverURL, name string) (dbURL string, drop func() error, err error) {
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", nil, fmt.Errorf("database: %w", err)
	}
	var driver, admin, create, dropStmt string
	switch u.Scheme {
	case "mysql":
		cfg := mysql.NewConfig()
		cfg.Net, cfg.Addr = "tcp", u.Host
		if u.User != nil {
			cfg.User = u.User.Username()
			cfg.Passwd, _ = u.User.Password()
		}
		ident := "`" + strings.ReplaceAll(name, "`", "``") + "`"
		driver, admin = "mysql", cfg.FormatDSN()
		create = "CREATE DATABASE " + ident + " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
		dropStmt = "DROP DATABASE IF EXISTS " + ident
	case "postgres", "postgresql":
		// The server is reached through its maintenance database.
		a := *u
		a.Path, a.RawPath = "/postgres", ""
		ident := `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
		driver, admin = "pgx", a.String()
		create = "CREATE DATABASE " + ident + " ENCODING 'UTF8' TEMPLATE template0"
		// FORCE ends connections still open, which would block the drop.
		dropStmt = "DROP DATABASE IF EXISTS " + ident + " WITH (FORCE)"
	default:
		return "", nil, errors.New("database: CreateDatabase needs a mysql:// or postgres:// URL")
	}
	exec := func(ctx context.Context, stmt string) error {
		db, err := sql.Open(driver, admin)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(ctx, stmt)
		return err
	}
	if err := exec(ctx, create); err != nil {
		return "", nil, fmt.Errorf("database: create %s on %s: %w", name, u.Host, err)
	}
	u.Path, u.RawPath = "/"+name, ""
	drop = func() error {
		if err := exec(context.WithoutCancel(ctx), dropStmt); err != nil {
			return fmt.Errorf("database: drop %s on %s: %w", name, u.Host, err)
		}
		return nil
	}
	return u.String(), drop, nil
}
