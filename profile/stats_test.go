package profile_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"idp/database"
	"idp/database/databasetest"
	"idp/ent"
	"idp/ent/user"
	"idp/profile"
)

// statsUser is a row for the stats tests: only the id and the gender matter.
type statsUser struct {
	id     int64
	gender user.Gender
}

// statsUsers pairs ids with genders, cycling through female, male and
// unspecified with a period the batch sizes do not divide, so that every
// batch mixes genders.
func statsUsers(ids ...int64) []statsUser {
	genders := []user.Gender{user.GenderFemale, user.GenderMale, user.GenderFemale, user.GenderUnspecified, user.GenderMale}
	users := make([]statsUser, len(ids))
	for i, id := range ids {
		users[i] = statsUser{id: id, gender: genders[i%len(genders)]}
	}
	return users
}

func TestWriteStats(t *testing.T) {
	tests := []struct {
		name  string
		users []statsUser
		batch int
		// want is the exact document; empty means the one encoding/json makes
		// of the users, an implementation independent of WriteStats'.
		want string
	}{
		{
			name:  "no users",
			batch: 10,
			want:  `{"user_ids":[],"count_female":0,"count_male":0,"count_unspecified":0}` + "\n",
		},
		{
			name: "the contract's example",
			users: []statsUser{
				{1, user.GenderFemale}, {2, user.GenderMale}, {3, user.GenderFemale}, {4, user.GenderFemale},
			},
			batch: 10,
			want:  `{"user_ids":[1,2,3,4],"count_female":3,"count_male":1,"count_unspecified":0}` + "\n",
		},
		{
			name: "inserted out of order",
			users: []statsUser{
				{40, user.GenderUnspecified}, {7, user.GenderMale}, {12, user.GenderFemale}, {3, user.GenderUnspecified}, {25, user.GenderMale},
			},
			batch: 10,
			want:  `{"user_ids":[3,7,12,25,40],"count_female":1,"count_male":2,"count_unspecified":2}` + "\n",
		},
		{
			name: "ids beyond float64 precision",
			users: []statsUser{
				{9007199254740993, user.GenderMale}, {9223372036854775807, user.GenderFemale}, {2, user.GenderMale},
			},
			batch: 2,
			want:  `{"user_ids":[2,9007199254740993,9223372036854775807],"count_female":1,"count_male":2,"count_unspecified":0}` + "\n",
		},
		{name: "ten users in batches of three", users: statsUsers(10, 3, 7, 1, 9, 2, 8, 4, 6, 5), batch: 3},
		{name: "nine users in batches of three", users: statsUsers(90, 30, 70, 10, 20, 80, 40, 60, 50), batch: 3},
		{name: "one full batch", users: statsUsers(3, 1, 2), batch: 3},
		{name: "batches of one", users: statsUsers(5, 4, 1, 3, 2), batch: 1},
		{name: "sparse ids across batches", users: statsUsers(1000, 1, 999, 2, 500, 501, 77, 1_000_000, 3), batch: 4},
	}
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// A leaked transaction exhausts the pool; fail rather than hang.
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := db.Ent.User.Delete().Exec(ctx); err != nil {
					t.Fatalf("delete users: %v", err)
				}
				statsInsert(t, db, tt.users...)

				var out bytes.Buffer
				if err := statsWrite(t, ctx, db, &out, tt.batch); err != nil {
					t.Fatalf("WriteStats: %v", err)
				}
				want := tt.want
				if want == "" {
					want = statsReference(t, tt.users)
				}
				if got := out.String(); got != want {
					t.Errorf("WriteStats wrote\n%s\nwant\n%s", got, want)
				}
				statsCheck(t, out.Bytes(), tt.users)
			})
		}
	})
}

// TestWriteStatsConsistentSnapshot changes the table while WriteStats is
// between two batches: rows are added below and above its position in the
// ids and rows are deleted before and after it. Without one snapshot for the
// counts and every batch, the output would list rows it did not count or
// count rows it did not list.
func TestWriteStatsConsistentSnapshot(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		before := statsUsers(2, 4, 6, 8, 10, 12, 14, 16, 18, 20)
		statsInsert(t, db, before...)

		w := &statsGateWriter{started: make(chan struct{}), release: make(chan struct{})}
		done := make(chan error, 1)
		go func() { done <- profile.WriteStats(ctx, db, w, 3) }()
		select {
		case <-w.started:
		case err := <-done:
			t.Fatalf("WriteStats returned (%v) before writing its first batch", err)
		case <-time.After(30 * time.Second):
			t.Fatal("WriteStats wrote nothing within 30s")
		}

		// The first batch is 2, 4, 6: 1, 3 and 5 are behind the cursor, 101
		// and 103 ahead of it; 2 was sent, 20 was not.
		func() {
			// The gate is released however the changes go, or WriteStats
			// would block forever.
			defer close(w.release)
			statsInsert(t, db, statsUsers(1, 3, 5, 101, 103)...)
			if _, err := db.Ent.User.Delete().Where(user.IDIn(2, 20)).Exec(ctx); err != nil {
				t.Fatalf("delete users: %v", err)
			}
		}()
		if err := <-done; err != nil {
			t.Fatalf("WriteStats: %v", err)
		}
		statsWaitIdle(t, db)
		if bytes.Contains(w.first, []byte("count_")) {
			t.Fatalf("the first write was the whole document %q: WriteStats read every batch before writing, so the changes did not happen mid-stream", w.first)
		}

		doc := statsCheck(t, w.buf.Bytes(), before)
		if n, sum := len(doc.UserIDs), doc.CountFemale+doc.CountMale+doc.CountUnspecified; int64(n) != sum {
			t.Errorf("%d ids listed but the counts add up to %d", n, sum)
		}
		// The changes must really have happened during the stream, or the
		// test proved nothing.
		if n, err := db.Ent.User.Query().Count(ctx); err != nil || n != 13 {
			t.Errorf("after the changes the table has %d users (%v), want 13", n, err)
		}
	})
}

// TestWriteStatsErrors checks that failures are returned, that nothing
// reaches w when the failure comes before the first batch (so that the
// caller can still answer with an error status), and that the transaction's
// connection goes back to the pool whatever happened.
func TestWriteStatsErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name        string
		batch       int
		cancelFirst bool // cancel the context before the call
		cancelOnW   bool // cancel the context in the first Write
		failAfter   int  // bytes w accepts before failing with boom; <0 never fails
		wantErr     error
		wantNothing bool // nothing may reach w
	}{
		{name: "context canceled before the call", batch: 3, cancelFirst: true, failAfter: -1, wantErr: context.Canceled, wantNothing: true},
		{name: "batch size zero", batch: 0, failAfter: -1, wantNothing: true},
		{name: "context canceled after the first batch", batch: 3, cancelOnW: true, failAfter: -1, wantErr: context.Canceled},
		{name: "writer fails at once", batch: 3, failAfter: 0, wantErr: boom},
		// The first batch, {"user_ids":[1,2,3, is 18 bytes.
		{name: "writer fails in the second batch", batch: 3, failAfter: 20, wantErr: boom},
		{name: "writer fails in the only write", batch: 1000, failAfter: 5, wantErr: boom},
		{name: "writer fails in the counts", batch: 1000, failAfter: 60, wantErr: boom},
	}
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		statsInsert(t, db, statsUsers(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)...)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if tt.cancelFirst {
					cancel()
				}
				w := &statsFailWriter{failAfter: tt.failAfter, err: boom}
				if tt.cancelOnW {
					w.onWrite = cancel
				}
				err := statsWrite(t, ctx, db, w, tt.batch)
				if err == nil {
					t.Fatalf("WriteStats returned nil after writing %q", w.buf.String())
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("WriteStats = %v, want an error wrapping %v", err, tt.wantErr)
				}
				if tt.wantNothing && w.writes > 0 {
					t.Errorf("WriteStats failed with %v after writing %q: the caller can no longer answer with an error status", err, w.buf.String())
				}
				if !tt.wantNothing && w.writes == 0 {
					t.Errorf("the failure %v came before any write: the test does not test a failure mid-stream", err)
				}
			})
		}
	})
}

// TestWriteStatsUnknownGender checks that a gender the document has no count
// for fails the call before anything is written, rather than leaving users
// listed but counted nowhere. Only SQLite stores such a value: MySQL's ENUM
// column refuses it.
func TestWriteStatsUnknownGender(t *testing.T) {
	databasetest.Each(t, func(t *testing.T, db *database.DB) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		statsInsert(t, db, statsUsers(1, 2, 3)...)
		if _, err := db.SQL.ExecContext(ctx, "UPDATE users SET gender = 'other' WHERE id = 2"); err != nil {
			t.Skipf("%s refuses a gender outside the enum: %v", db.Dialect, err)
		}
		var out bytes.Buffer
		err := statsWrite(t, ctx, db, &out, 1)
		if err == nil || !strings.Contains(err.Error(), `"other"`) {
			t.Errorf("WriteStats = %v, want an error naming the gender \"other\"", err)
		}
		if out.Len() > 0 {
			t.Errorf("WriteStats wrote %q before failing", out.String())
		}
	})
}

// statsDoc is the stats document, decoded.
type statsDoc struct {
	UserIDs          []int64 `json:"user_ids"`
	CountFemale      int64   `json:"count_female"`
	CountMale        int64   `json:"count_male"`
	CountUnspecified int64   `json:"count_unspecified"`
}

// statsReference is the document for users as encoding/json writes it.
func statsReference(t *testing.T, users []statsUser) string {
	t.Helper()
	doc := statsDoc{UserIDs: []int64{}}
	for _, u := range users {
		doc.UserIDs = append(doc.UserIDs, u.id)
		switch u.gender {
		case user.GenderFemale:
			doc.CountFemale++
		case user.GenderMale:
			doc.CountMale++
		case user.GenderUnspecified:
			doc.CountUnspecified++
		}
	}
	slices.Sort(doc.UserIDs)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b) + "\n"
}

// statsCheck decodes out and checks what the contract promises, whatever the
// formatting: valid JSON with exactly the four keys, every id of users once
// in ascending order, and counts that are the genders of those ids.
func statsCheck(t *testing.T, out []byte, users []statsUser) statsDoc {
	t.Helper()
	if !json.Valid(out) {
		t.Fatalf("output is not valid JSON: %q", out)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.DisallowUnknownFields()
	var doc statsDoc
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("decode %q: %v", out, err)
	}
	if doc.UserIDs == nil {
		t.Errorf("user_ids is not a list in %q", out)
	}
	if !slices.IsSorted(doc.UserIDs) || len(slices.Compact(slices.Clone(doc.UserIDs))) != len(doc.UserIDs) {
		t.Errorf("user_ids are not strictly ascending: %v", doc.UserIDs)
	}
	gender := map[int64]user.Gender{}
	for _, u := range users {
		gender[u.id] = u.gender
	}
	var wantIDs []int64
	for id := range gender {
		wantIDs = append(wantIDs, id)
	}
	slices.Sort(wantIDs)
	if !slices.Equal(doc.UserIDs, wantIDs) && len(doc.UserIDs)+len(wantIDs) > 0 {
		t.Errorf("user_ids = %v, want %v", doc.UserIDs, wantIDs)
	}
	var female, male, unspecified int64
	for _, id := range doc.UserIDs {
		switch gender[id] {
		case user.GenderFemale:
			female++
		case user.GenderMale:
			male++
		case user.GenderUnspecified:
			unspecified++
		}
	}
	if doc.CountFemale != female || doc.CountMale != male || doc.CountUnspecified != unspecified {
		t.Errorf("counts female %d, male %d, unspecified %d; the listed ids have %d, %d, %d",
			doc.CountFemale, doc.CountMale, doc.CountUnspecified, female, male, unspecified)
	}
	return doc
}

// statsInsert creates users with the given ids and genders.
func statsInsert(t *testing.T, db *database.DB, users ...statsUser) {
	t.Helper()
	if len(users) == 0 {
		return
	}
	builders := make([]*ent.UserCreate, len(users))
	for i, u := range users {
		builders[i] = db.Ent.User.Create().
			SetID(u.id).
			SetUsername(fmt.Sprintf("user%d", u.id)).
			SetEmail(fmt.Sprintf("user%d@example.com", u.id)).
			SetPasswordHash("x").
			SetFirstName("First").
			SetLastName("Last").
			SetGender(u.gender)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := db.Ent.User.CreateBulk(builders...).Exec(ctx); err != nil {
		t.Fatalf("insert users: %v", err)
	}
}

// statsWrite runs WriteStats and checks that it gave its connection back.
func statsWrite(t *testing.T, ctx context.Context, db *database.DB, w io.Writer, batch int) error {
	t.Helper()
	err := profile.WriteStats(ctx, db, w, batch)
	statsWaitIdle(t, db)
	return err
}

// statsWaitIdle fails t unless every connection is back in the pool within a
// few seconds: database/sql rolls a transaction back on its own goroutine
// when its context is canceled, so the release may lag the return.
func statsWaitIdle(t *testing.T, db *database.DB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for db.SQL.Stats().InUse > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still in use: WriteStats leaked its transaction", db.SQL.Stats().InUse)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// statsGateWriter blocks its first Write until release is closed, holding
// WriteStats between two batches.
type statsGateWriter struct {
	buf     bytes.Buffer
	first   []byte // what the first Write was given
	once    sync.Once
	started chan struct{}
	release chan struct{}
}

func (w *statsGateWriter) Write(p []byte) (int, error) {
	w.once.Do(func() {
		w.first = bytes.Clone(p)
		close(w.started)
		<-w.release
	})
	return w.buf.Write(p)
}

// statsFailWriter accepts failAfter bytes and then fails with err; a
// negative failAfter never fails.
type statsFailWriter struct {
	buf       bytes.Buffer
	writes    int
	failAfter int
	err       error
	onWrite   func()
}

func (w *statsFailWriter) Write(p []byte) (int, error) {
	w.writes++
	if w.onWrite != nil {
		w.onWrite()
	}
	if w.failAfter < 0 {
		return w.buf.Write(p)
	}
	room := w.failAfter - w.buf.Len()
	if len(p) <= room {
		return w.buf.Write(p)
	}
	w.buf.Write(p[:max(room, 0)])
	return max(room, 0), w.err
}
