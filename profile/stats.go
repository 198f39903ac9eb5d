package profile

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"

	"idp/storage"
)

// StatsReader streams every user id with the gender counts
// (*storage.Store): ids ascending, to fn a batch at a time, with the
// counts over exactly those ids.
type StatsReader interface {
	UserStats(ctx context.Context, batch int, fn func(ids []int64) error) (storage.GenderCounts, error)
}

// WriteStats writes the statistics document of GET /v1/users/stats for every
// user to w:
//
//	{"user_ids":[1,2,3,4],"count_female":3,"count_male":1,"count_unspecified":0}
//
// followed by a newline, with the ids ascending.
//
// Memory stays flat however many users there are: db streams the ids batch
// at a time (see storage.Store.UserStats), and each batch is written and
// flushed to w as soon as it is read, before the next is queried. The
// counts are over exactly the rows listed, from the same snapshot. The
// snapshot is held for as long as the client takes to read the document, so
// the caller should bound the request with a deadline on ctx and a write
// timeout on the connection.
//
// Nothing reaches w before the counts are known and the first batch has
// been read: an error up to that point is returned with w untouched, and
// the caller can still answer with an error status. Later, a failing query
// or a failing w also returns an error, but w then holds a truncated
// document after a success status; the caller's only honest move is to
// abort the connection, so that the client sees a failed transfer instead
// of mistaking a prefix for the answer.
func WriteStats(ctx context.Context, db StatsReader, w io.Writer, batch int) error {
	// Until the first flush, which comes after the first full batch, all
	// of this stays in bw's buffer, and w untouched.
	bw := bufio.NewWriterSize(w, 32<<10)
	// num holds one encoded id at a time, so encoding allocates nothing per id.
	num := make([]byte, 0, 24)
	// Each id is encoded after a comma; skip is 1 until the first id is
	// written, to leave that comma out.
	skip := 1
	bw.WriteString(`{"user_ids":[`)
	counts, err := db.UserStats(ctx, batch, func(ids []int64) error {
		for _, id := range ids {
			num = strconv.AppendInt(append(num[:0], ','), id, 10)
			_, err := bw.Write(num[skip:])
			skip = 0
			if err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		// A short batch is the last: the counts follow it in the same
		// flush. Flushing a full one sends the client each page as soon as
		// it is read, rather than holding it in the buffer during the next
		// query.
		if len(ids) == batch {
			if err := bw.Flush(); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("profile: stats: %w", err)
	}
	num = append(num[:0], `],"count_female":`...)
	num = strconv.AppendInt(num, counts.Female, 10)
	bw.Write(num)
	num = append(num[:0], `,"count_male":`...)
	num = strconv.AppendInt(num, counts.Male, 10)
	bw.Write(num)
	num = append(num[:0], `,"count_unspecified":`...)
	num = strconv.AppendInt(num, counts.Unspecified, 10)
	bw.Write(num)
	bw.WriteString("}\n")
	// bufio.Writer keeps its first error, so Flush reports any failure of the
	// unchecked writes above.
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("profile: stats: write: %w", err)
	}
	return nil
}
