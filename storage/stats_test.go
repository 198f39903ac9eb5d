package storage

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"idp/ent"
	"idp/ent/user"
)

// statsUser is a row for the stats tests: only the id and the gender matter.
type statsUser struct {
	id     int64
	gender Gender
}

// statsUsers pairs ids with genders, cycling through female, male and
// unspecified with a period the batch sizes do not divide, so that every
// batch mixes genders.
func statsUsers(ids ...int64) []statsUser {
	genders := []Gender{GenderFemale, GenderMale, GenderFemale, GenderUnspecified, GenderMale}
	users := make([]statsUser, len(ids))
	for i, id := range ids {
		users[i] = statsUser{id: id, gender: genders[i%len(genders)]}
	}
	return users
}

// statsResult is what one UserStats call gave.
type statsResult struct {
	batches [][]int64
	counts  GenderCounts
}

func (r statsResult) ids() []int64 { return slices.Concat(r.batches...) }

func TestUserStats(t *testing.T) {
	tests := []struct {
		name  string
		users []statsUser
		batch int
		// want is the batches expected; nil means every id ascending, cut
		// into batches of batch.
		want [][]int64
	}{
		{name: "no users", batch: 10, want: [][]int64{}},
		{name: "the contract's example", batch: 10, users: []statsUser{
			{1, GenderFemale}, {2, GenderMale}, {3, GenderFemale}, {4, GenderFemale},
		}},
		{name: "inserted out of order", batch: 10, users: []statsUser{
			{40, GenderUnspecified}, {7, GenderMale}, {12, GenderFemale}, {3, GenderUnspecified}, {25, GenderMale},
		}, want: [][]int64{{3, 7, 12, 25, 40}}},
		{name: "ids beyond float64 precision", batch: 2, users: []statsUser{
			{9007199254740993, GenderMale}, {9223372036854775807, GenderFemale}, {2, GenderMale},
		}, want: [][]int64{{2, 9007199254740993}, {9223372036854775807}}},
		{name: "ten users in batches of three", users: statsUsers(10, 3, 7, 1, 9, 2, 8, 4, 6, 5), batch: 3},
		{name: "nine users in batches of three", users: statsUsers(90, 30, 70, 10, 20, 80, 40, 60, 50), batch: 3},
		{name: "one full batch", users: statsUsers(3, 1, 2), batch: 3},
		{name: "batches of one", users: statsUsers(5, 4, 1, 3, 2), batch: 1},
		{name: "sparse ids across batches", users: statsUsers(1000, 1, 999, 2, 500, 501, 77, 1_000_000, 3), batch: 4},
	}
	each(t, func(t *testing.T, s *Store) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// A leaked transaction exhausts the pool; fail rather than hang.
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if _, err := s.db.User.Delete().Exec(ctx); err != nil {
					t.Fatalf("delete users: %v", err)
				}
				statsInsert(t, s, tt.users...)

				got, err := statsRun(t, ctx, s, tt.batch, nil)
				if err != nil {
					t.Fatalf("UserStats: %v", err)
				}
				want := tt.want
				if want == nil {
					ids := make([]int64, 0, len(tt.users))
					for _, u := range tt.users {
						ids = append(ids, u.id)
					}
					slices.Sort(ids)
					want = slices.Collect(slices.Chunk(ids, tt.batch))
				}
				if !slices.EqualFunc(got.batches, want, slices.Equal) {
					t.Errorf("UserStats streamed %v, want %v", got.batches, want)
				}
				statsCheck(t, got, tt.users)
			})
		}
	})
}

// TestUserStatsConsistentSnapshot changes the table while UserStats is
// between two batches: rows are added below and above its position in the
// ids and rows are deleted before and after it. Without one snapshot for the
// counts and every batch, the result would list rows it did not count or
// count rows it did not list.
func TestUserStatsConsistentSnapshot(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		before := statsUsers(2, 4, 6, 8, 10, 12, 14, 16, 18, 20)
		statsInsert(t, s, before...)

		started, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		type result struct {
			r   statsResult
			err error
		}
		done := make(chan result, 1)
		go func() {
			r, err := statsRun(t, ctx, s, 3, func([]int64) {
				once.Do(func() {
					close(started)
					<-release
				})
			})
			done <- result{r, err}
		}()
		select {
		case <-started:
		case r := <-done:
			t.Fatalf("UserStats returned (%v) before streaming its first batch", r.err)
		case <-time.After(30 * time.Second):
			t.Fatal("UserStats streamed nothing within 30s")
		}

		// The first batch is 2, 4, 6: 1, 3 and 5 are behind the cursor, 101
		// and 103 ahead of it; 2 was streamed, 20 was not.
		func() {
			// The gate is released however the changes go, or UserStats
			// would block forever.
			defer close(release)
			statsInsert(t, s, statsUsers(1, 3, 5, 101, 103)...)
			if _, err := s.db.User.Delete().Where(user.IDIn(2, 20)).Exec(ctx); err != nil {
				t.Fatalf("delete users: %v", err)
			}
		}()
		r := <-done
		if r.err != nil {
			t.Fatalf("UserStats: %v", r.err)
		}
		if len(r.r.batches) < 2 {
			t.Fatalf("UserStats streamed %v in one batch, so the changes did not happen mid-stream", r.r.batches)
		}
		statsCheck(t, r.r, before)
		// The changes must really have happened during the stream, or the
		// test proved nothing.
		if n, err := s.db.User.Query().Count(ctx); err != nil || n != 13 {
			t.Errorf("after the changes the table has %d users (%v), want 13", n, err)
		}
	})
}

// TestUserStatsErrors checks that failures are returned, that fn is not
// called when the failure comes before the first batch (so that the caller
// can still answer with an error status), that fn's error stops the stream
// and comes back as it is, and that the transaction's connection goes back
// to the pool whatever happened.
func TestUserStatsErrors(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name        string
		batch       int
		cancelFirst bool // cancel the context before the call
		cancelInFn  bool // cancel the context in the first call of fn
		failAt      int  // the call of fn (1, 2, …) that returns boom; 0 never
		wantErr     error
		wantCalls   int // how many times fn is called
	}{
		{name: "context canceled before the call", batch: 3, cancelFirst: true, wantErr: context.Canceled, wantCalls: 0},
		{name: "batch size zero", batch: 0, wantCalls: 0},
		{name: "batch size negative", batch: -1, wantCalls: 0},
		{name: "context canceled after the first batch", batch: 3, cancelInFn: true, wantErr: context.Canceled, wantCalls: 1},
		{name: "fn fails at once", batch: 3, failAt: 1, wantErr: boom, wantCalls: 1},
		{name: "fn fails in the second batch", batch: 3, failAt: 2, wantErr: boom, wantCalls: 2},
		{name: "fn fails in the last batch", batch: 3, failAt: 4, wantErr: boom, wantCalls: 4},
		{name: "fn fails in the only batch", batch: 1000, failAt: 1, wantErr: boom, wantCalls: 1},
	}
	each(t, func(t *testing.T, s *Store) {
		statsInsert(t, s, statsUsers(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)...)
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				if tt.cancelFirst {
					cancel()
				}
				calls := 0
				counts, err := s.UserStats(ctx, tt.batch, func([]int64) error {
					calls++
					if tt.cancelInFn && calls == 1 {
						cancel()
					}
					if calls == tt.failAt {
						return boom
					}
					return nil
				})
				statsWaitIdle(t, s)
				if err == nil {
					t.Fatalf("UserStats returned nil (counts %+v) after %d calls of fn", counts, calls)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("UserStats = %v, want an error wrapping %v", err, tt.wantErr)
				}
				if tt.wantErr == boom && err != boom {
					t.Errorf("UserStats = %v, want fn's error as it is", err)
				}
				if calls != tt.wantCalls {
					t.Errorf("fn was called %d times, want %d", calls, tt.wantCalls)
				}
				if counts != (GenderCounts{}) {
					t.Errorf("UserStats failed but gave counts %+v", counts)
				}
			})
		}
	})
}

// TestUserStatsUnknownGender checks that a gender without a count fails
// the call before fn is called, rather than leaving users listed but
// counted nowhere. Only SQLite stores such a value: MySQL's ENUM column
// and PostgreSQL's CHECK refuse it.
func TestUserStatsUnknownGender(t *testing.T) {
	each(t, func(t *testing.T, s *Store) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		statsInsert(t, s, statsUsers(1, 2, 3)...)
		if _, err := s.sql.ExecContext(ctx, "UPDATE users SET gender = 'other' WHERE id = 2"); err != nil {
			t.Skipf("%s refuses a gender outside the enum: %v", s.dialect, err)
		}
		got, err := statsRun(t, ctx, s, 1, nil)
		if err == nil || !strings.Contains(err.Error(), `"other"`) {
			t.Errorf("UserStats = %v, want an error naming the gender \"other\"", err)
		}
		if len(got.batches) > 0 {
			t.Errorf("UserStats streamed %v before failing", got.batches)
		}
	})
}

// statsRun runs UserStats, collecting what it streams (and calling each,
// when not nil, with every batch), and checks that it gave its connection
// back.
func statsRun(t *testing.T, ctx context.Context, s *Store, batch int, each func([]int64)) (statsResult, error) {
	t.Helper()
	var r statsResult
	counts, err := s.UserStats(ctx, batch, func(ids []int64) error {
		if len(ids) == 0 || len(ids) > batch {
			t.Errorf("a batch of %d ids, want 1 to %d", len(ids), batch)
		}
		r.batches = append(r.batches, slices.Clone(ids))
		if each != nil {
			each(ids)
		}
		return nil
	})
	r.counts = counts
	statsWaitIdle(t, s)
	return r, err
}

// statsCheck checks what UserStats promises: every id of users once in
// ascending order, and counts that are the genders of those ids.
func statsCheck(t *testing.T, r statsResult, users []statsUser) {
	t.Helper()
	ids := r.ids()
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Errorf("ids are not strictly ascending: %v", ids)
	}
	gender := map[int64]Gender{}
	for _, u := range users {
		gender[u.id] = u.gender
	}
	var want GenderCounts
	for _, id := range ids {
		switch gender[id] {
		case GenderFemale:
			want.Female++
		case GenderMale:
			want.Male++
		case GenderUnspecified:
			want.Unspecified++
		}
	}
	if r.counts != want {
		t.Errorf("counts %+v; the streamed ids have %+v", r.counts, want)
	}
	if n, sum := int64(len(ids)), r.counts.Female+r.counts.Male+r.counts.Unspecified; n != sum {
		t.Errorf("%d ids streamed but the counts add up to %d", n, sum)
	}
}

// statsInsert creates users with the given ids and genders.
func statsInsert(t *testing.T, s *Store, users ...statsUser) {
	t.Helper()
	if len(users) == 0 {
		return
	}
	builders := make([]*ent.UserCreate, len(users))
	for i, u := range users {
		builders[i] = s.db.User.Create().
			SetID(u.id).
			SetUsername(fmt.Sprintf("user%d", u.id)).
			SetEmail(fmt.Sprintf("user%d@example.com", u.id)).
			SetPasswordHash("x").
			SetFirstName("First").
			SetLastName("Last").
			SetGender(user.Gender(u.gender))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.db.User.CreateBulk(builders...).Exec(ctx); err != nil {
		t.Fatalf("insert users: %v", err)
	}
}

// statsWaitIdle fails t unless every connection is back in the pool within a
// few seconds: database/sql rolls a transaction back on its own goroutine
// when its context is canceled, so the release may lag the return.
func statsWaitIdle(t *testing.T, s *Store) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for s.sql.Stats().InUse > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still in use: UserStats leaked its transaction", s.sql.Stats().InUse)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
