package database

import (
	"context"
	"database/sql/driver"
	"errors"
	"reflect"

	"modernc.org/sqlite"
)

// Both engines spend much of a small query's cost on its text: SQLite
// compiles every statement it is given (a tenth of the CPU of a bearer-token
// check), and MySQL parses and plans every query that arrives as text (with
// the driver's interpolation, a third of MariaDB's CPU for the bearer
// check's read). database/sql through ent hands them the same few dozen
// statements over and over, so each connection keeps its prepared
// statements, by their text, and runs them again: on MySQL one round trip
// in the binary protocol, as with interpolation, without the parsing.

// PostgreSQL needs none of this: pgx keeps the same kind of cache itself
// (its default query mode prepares each statement text once per connection,
// up to 512 of them, least recently used out), and its connections lack
// driver.Validator, so cachingConnector would pass them through unwrapped
// anyway. Wrapping them would prepare each statement a second time, under
// another name, for no saving.

// A connection keeps its most recently used statements up to a bound, and
// closes the least recently used one to make room, so that statements run
// once (ent builds a few with variable IN lists) cannot crowd out the ones
// every request runs. MySQL counts prepared statements against
// max_prepared_stmt_count (16,382 by default) for the whole server, so
// there the bound is small: replicas × pool size × 32 must stay below it.
const (
	sqliteCachedStmts = 256
	mysqlCachedStmts  = 32
)

// cachingConnector opens connections through another connector and gives
// each its own statement cache of at most max statements.
type cachingConnector struct {
	driver.Connector
	max int
}

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if _, ok := conn.(fullConn); !ok {
		return conn, nil
	}
	return &cachingConn{Conn: conn, max: c.max, stmts: make(map[string]*cachedStmt)}, nil
}

// sqliteConnector opens modernc connections (modernc has no connector).
type sqliteConnector struct {
	dsn string
	drv *sqlite.Driver
}

func (c sqliteConnector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }

func (c sqliteConnector) Driver() driver.Driver { return c.drv }

// cachingConn is a connection with a statement cache. database/sql uses a
// connection from one goroutine at a time; a cached statement whose rows
// are still open is busy, and a second use of it then runs uncached.
type cachingConn struct {
	driver.Conn
	max   int
	stmts map[string]*cachedStmt
	clock uint64 // counts uses, for lastUse
}

type cachedStmt struct {
	stmt    driver.Stmt
	busy    bool
	lastUse uint64
}

// the optional interfaces of the drivers' connections, which database/sql
// looks for on the connection it is given.
type (
	fullConn interface {
		driver.Conn
		driver.ConnBeginTx
		driver.ConnPrepareContext
		driver.ExecerContext
		driver.QueryerContext
		driver.Pinger
		driver.SessionResetter
		driver.Validator
	}
	ctxStmt interface {
		driver.StmtExecContext
		driver.StmtQueryContext
	}
)

var (
	_ driver.ConnBeginTx        = (*cachingConn)(nil)
	_ driver.ConnPrepareContext = (*cachingConn)(nil)
	_ driver.ExecerContext      = (*cachingConn)(nil)
	_ driver.QueryerContext     = (*cachingConn)(nil)
	_ driver.Pinger             = (*cachingConn)(nil)
	_ driver.SessionResetter    = (*cachingConn)(nil)
	_ driver.Validator          = (*cachingConn)(nil)
	_ driver.NamedValueChecker  = (*cachingConn)(nil)
)

func (c *cachingConn) inner() fullConn { return c.Conn.(fullConn) }

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.inner().BeginTx(ctx, opts)
}

func (c *cachingConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.inner().PrepareContext(ctx, query)
}

func (c *cachingConn) Ping(ctx context.Context) error { return c.inner().Ping(ctx) }

func (c *cachingConn) ResetSession(ctx context.Context) error { return c.inner().ResetSession(ctx) }

func (c *cachingConn) IsValid() bool { return c.inner().IsValid() }

// CheckNamedValue keeps the driver's own argument conversion (MySQL's
// accepts more types than database/sql's default).
func (c *cachingConn) CheckNamedValue(nv *driver.NamedValue) error {
	if nc, ok := c.Conn.(driver.NamedValueChecker); ok {
		return nc.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// take returns the cached statement for query, preparing it on first use,
// or nil when it is busy, every cached statement is busy or the statement
// could not be prepared: the uncached path then runs it, and reports its
// error if it has one. (MySQL refuses to prepare past
// max_prepared_stmt_count; the query itself is fine.)
func (c *cachingConn) take(ctx context.Context, query string) *cachedStmt {
	c.clock++
	cs, ok := c.stmts[query]
	if ok {
		if cs.busy {
			return nil
		}
		cs.busy, cs.lastUse = true, c.clock
		return cs
	}
	if len(c.stmts) >= c.max && !c.evict() {
		return nil
	}
	st, err := c.inner().PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	if _, ok := st.(ctxStmt); !ok {
		st.Close()
		return nil
	}
	cs = &cachedStmt{stmt: st, busy: true, lastUse: c.clock}
	c.stmts[query] = cs
	return cs
}

// evict closes the least recently used statement that is not busy, and
// reports whether there was one. The scan is over a few dozen entries and
// happens only when a new statement arrives at a full cache.
func (c *cachingConn) evict() bool {
	var (
		oldest string
		found  *cachedStmt
	)
	for q, cs := range c.stmts {
		if !cs.busy && (found == nil || cs.lastUse < found.lastUse) {
			oldest, found = q, cs
		}
	}
	if found == nil {
		return false
	}
	delete(c.stmts, oldest)
	found.stmt.Close()
	return true
}

func (c *cachingConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	cs := c.take(ctx, query)
	if cs == nil {
		return c.inner().ExecContext(ctx, query, args)
	}
	defer func() { cs.busy = false }()
	return cs.stmt.(ctxStmt).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	cs := c.take(ctx, query)
	if cs == nil {
		return c.inner().QueryContext(ctx, query, args)
	}
	rows, err := cs.stmt.(ctxStmt).QueryContext(ctx, args)
	if err != nil {
		cs.busy = false
		return nil, err
	}
	return &cachedRows{Rows: rows, release: func() { cs.busy = false }}, nil
}

// Close closes the cached statements, then the connection.
func (c *cachingConn) Close() error {
	var errs []error
	for q, cs := range c.stmts {
		errs = append(errs, cs.stmt.Close())
		delete(c.stmts, q)
	}
	return errors.Join(append(errs, c.Conn.Close())...)
}

// cachedRows frees its statement when closed, and passes on the column type
// information modernc's rows give.
type cachedRows struct {
	driver.Rows
	release func()
}

func (r *cachedRows) Close() error {
	err := r.Rows.Close()
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}

func (r *cachedRows) ColumnTypeDatabaseTypeName(i int) string {
	if t, ok := r.Rows.(driver.RowsColumnTypeDatabaseTypeName); ok {
		return t.ColumnTypeDatabaseTypeName(i)
	}
	return ""
}

func (r *cachedRows) ColumnTypeLength(i int) (int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeLength); ok {
		return t.ColumnTypeLength(i)
	}
	return 0, false
}

func (r *cachedRows) ColumnTypeNullable(i int) (bool, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypeNullable); ok {
		return t.ColumnTypeNullable(i)
	}
	return false, false
}

func (r *cachedRows) ColumnTypePrecisionScale(i int) (int64, int64, bool) {
	if t, ok := r.Rows.(driver.RowsColumnTypePrecisionScale); ok {
		return t.ColumnTypePrecisionScale(i)
	}
	return 0, 0, false
}

func (r *cachedRows) ColumnTypeScanType(i int) reflect.Type {
	if t, ok := r.Rows.(driver.RowsColumnTypeScanType); ok {
		return t.ColumnTypeScanType(i)
	}
	return reflect.TypeFor[any]()
}
