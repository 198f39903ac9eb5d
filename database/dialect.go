package database

import (
	"strconv"
	"strings"

	"entgo.io/ent/dialect"
)

// The few statements idp writes by hand are written once, in the dialect
// MySQL and SQLite share: `?` placeholders and standard SQL otherwise. What
// differs on PostgreSQL is translated here, so that no caller needs a
// switch of its own.

// Rebind returns query with its `?` placeholders written as the dialect
// wants them: unchanged for MySQL and SQLite, numbered ($1, $2, …) for
// PostgreSQL. A `?` inside a quoted string or identifier is left alone.
func Rebind(dia, query string) string {
	if dia != dialect.Postgres || !strings.Contains(query, "?") {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte // the quote character of the literal we are in, or 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			// A doubled quote inside a literal is an escaped one: leaving
			// and re-entering the literal reads it the same way.
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// BigIntCast returns an SQL expression that converts expr, a string that
// holds a decimal integer, to a 64-bit integer that compares with (and is
// looked up in an index of) an integer column. MySQL knows no BIGINT in a
// CAST; SQLite accepts either spelling.
func BigIntCast(dia, expr string) string {
	if dia == dialect.Postgres {
		return "CAST(" + expr + " AS BIGINT)"
	}
	return "CAST(" + expr + " AS SIGNED INTEGER)"
}
