package ent

// This file is written by hand; `go generate` leaves it alone.

// Dialect returns the SQL dialect of the client's driver (dialect.MySQL,
// dialect.Postgres or dialect.SQLite), for the few statements written by
// hand and run through ExecContext or QueryContext (see database.Rebind).
func (c *Client) Dialect() string { return c.driver.Dialect() }
