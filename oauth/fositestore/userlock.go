package fositestore

import "fmt"

// ErrUserGone: a token or code was to be written for a user whose account
// no longer exists (erased while the grant was under way). It wraps
// ErrRevoked, which is what it means to a refresh.
//
// No row of an erased user is written after the erasure: storage writes a
// user's token, code or chain row in one transaction (or the one ctx
// carries) that first holds the user's row with a shared lock
// (storage.TokenRecord.UserID), and the refresh grant's two statements hold
// the user inside the statement instead.
var ErrUserGone = fmt.Errorf("%w: the user's account is gone", ErrRevoked)
