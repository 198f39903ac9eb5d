package idp

import _ "embed"

// passwordResetPage is the page /.well-known/change-password leads to
// (W3C "A Well-Known URL for Changing Passwords"): the reset flow explained
// for people and for app developers.
//
//go:embed web/password-reset.html
var passwordResetPage string

// PasswordResetPage returns the HTML of the password reset page.
func PasswordResetPage() string { return passwordResetPage }
