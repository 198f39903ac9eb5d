package signin

import (
	"testing"

	"idp/pages"
	"idp/profile"
)

// TestFieldMessage: every field error the rules of /v1 give has a message
// of its own on the pages, never the generic one.
func TestFieldMessage(t *testing.T) {
	for _, tc := range []struct {
		field, code string
		want        pages.Message
	}{
		{"username", "required", pages.MsgRequired},
		{"username", "invalid", pages.MsgUsernameInvalid},
		{"username", "too_long", pages.MsgUsernameInvalid},
		{"username", "taken", pages.MsgUsernameTaken},
		{"email", "required", pages.MsgRequired},
		{"email", "invalid", pages.MsgEmailInvalid},
		{"email", "taken", pages.MsgEmailTaken},
		{"password", "required", pages.MsgRequired},
		{"password", "too_short", pages.MsgPasswordTooShort},
		{"password", "too_long", pages.MsgPasswordTooLong},
		{"password", "invalid", pages.MsgPasswordTooLong},
		{"password", "common", pages.MsgPasswordCommon},
		{"password", "matches_login", pages.MsgPasswordLikeLogin},
		{"new_password", "too_short", pages.MsgPasswordTooShort},
		{"new_password", "matches_login", pages.MsgPasswordLikeLogin},
		{"first_name", "required", pages.MsgRequired},
		{"first_name", "invalid", pages.MsgNameInvalid},
		{"last_name", "too_long", pages.MsgNameInvalid},
		{"gender", "invalid", pages.MsgGenderInvalid},
		{"picture", "too_many_pixels", pages.MsgPictureTooBig},
		{"picture", "too_large", pages.MsgPictureTooLarge},
		{"picture", "unsupported_type", pages.MsgPictureNotImage},
		{"client_id", "invalid", pages.MsgBadRequest},
	} {
		if got := fieldMessage(profile.FieldError{Field: tc.field, Code: tc.code}); got != tc.want {
			t.Errorf("%s %s: %s, want %s", tc.field, tc.code, got, tc.want)
		}
	}
}
