package pages

// Message is the key of a text in the catalogs (messages/*.json). Handlers
// pass one of the constants below; the page shows it in the chosen language.
type Message string

// The messages a handler can put on a page. A test checks that every one of
// them is in every catalog.
const (
	// MsgLoginFailed is the one answer for an unknown login and a wrong
	// password alike.
	MsgLoginFailed  Message = "msg.login_failed"
	MsgTooManyTries Message = "msg.too_many_tries"
	// MsgFormExpired answers a form whose CSRF token did not verify.
	MsgFormExpired       Message = "msg.form_expired"
	MsgBadRequest        Message = "msg.bad_request"
	MsgUnknownClient     Message = "msg.unknown_client"
	MsgBadRedirectURI    Message = "msg.bad_redirect_uri"
	MsgNotFound          Message = "msg.not_found"
	MsgServerError       Message = "msg.server_error"
	MsgUnavailable       Message = "msg.unavailable"
	MsgCodeSent          Message = "msg.code_sent"
	MsgCodeInvalid       Message = "msg.code_invalid"
	MsgPasswordChanged   Message = "msg.password_changed"
	MsgRequired          Message = "msg.required"
	MsgUsernameInvalid   Message = "msg.username_invalid"
	MsgUsernameTaken     Message = "msg.username_taken"
	MsgEmailInvalid      Message = "msg.email_invalid"
	MsgEmailTaken        Message = "msg.email_taken"
	MsgPasswordTooShort  Message = "msg.password_too_short"
	MsgPasswordTooLong   Message = "msg.password_too_long"
	MsgPasswordCommon    Message = "msg.password_common"
	MsgPasswordLikeLogin Message = "msg.password_like_login"
	MsgNameInvalid       Message = "msg.name_invalid"
	MsgGenderInvalid     Message = "msg.gender_invalid"
	MsgPictureTooLarge   Message = "msg.picture_too_large"
	MsgPictureTooBig     Message = "msg.picture_too_big"
	MsgPictureNotImage   Message = "msg.picture_not_image"
	// MsgPasskeyNeedsJS answers the passkey button without JavaScript;
	// MsgPasskeyFailed a refused passkey sign-in.
	MsgPasskeyNeedsJS Message = "msg.passkey_needs_js"
	MsgPasskeyFailed  Message = "msg.passkey_failed"
	// The account page's passkey messages.
	MsgPasskeyAdded     Message = "msg.passkey_added"
	MsgPasskeyDeleted   Message = "msg.passkey_deleted"
	MsgPasskeyAddFailed Message = "msg.passkey_add_failed"
	MsgPasskeyName      Message = "msg.passkey_name"
	// The account page's notices and errors.
	MsgSaved            Message = "msg.saved"
	MsgEmailVerified    Message = "msg.email_verified"
	MsgVerificationSent Message = "msg.verification_sent"
	MsgEmailChangeSent  Message = "msg.email_change_sent"
	MsgSessionEnded     Message = "msg.session_ended"
	MsgPasswordWrong    Message = "msg.password_wrong"
	MsgConfirmDeletion  Message = "msg.confirm_deletion"
	MsgPasswordNeeded   Message = "msg.password_needed"
)

// Page is the data of one page. Only this package's types implement it.
type Page interface {
	info() pageInfo
}

// pageInfo is what Render needs to know about a page beyond its data.
type pageInfo struct {
	template string
	title    Message
	// redirect is where the page's form may end after redirects: its origin
	// joins form-action.
	redirect string
	// formPost marks the auto-submitting response page: form-action is the
	// target only, and its script gets a nonce.
	formPost bool
	// script marks a page that loads the passkey script.
	script bool
}

// Flow is the hidden state a form page carries through a POST and back.
type Flow struct {
	// Continue names the authorization (or logout) request the page serves,
	// as an opaque value the handler made; it comes back in the form field
	// "continue" and in the links to the other pages.
	Continue string
	// RedirectURI is the client's redirect URI that this page's answer leads
	// to (through 303s). Browsers apply form-action to the redirects that
	// follow a form's POST, so its origin must be allowed there; empty when
	// the answer stays on this site.
	RedirectURI string
}

// Login is the sign-in page.
type Login struct {
	Flow
	// Login pre-fills the login field: login_hint, or what was typed.
	Login string
	// Remember pre-ticks "keep me signed in".
	Remember bool
	// Error, when set, is shown inside role="alert".
	Error Message
	// Notice is an informational message (e.g. MsgPasswordChanged), shown
	// inside role="status".
	Notice Message
	// Passkey shows <button name="method" value="passkey">.
	Passkey bool
}

func (p Login) info() pageInfo {
	return pageInfo{template: "login", title: "login.title", redirect: p.RedirectURI, script: p.Passkey}
}

// Consent asks the user to let a client have scopes.
type Consent struct {
	Flow
	ClientName string
	// Scopes are scope names; the page shows them in words (unknown ones by
	// name).
	Scopes []string
}

func (p Consent) info() pageInfo {
	return pageInfo{template: "consent", title: "consent.title", redirect: p.RedirectURI}
}

// LogoutConfirm asks before ending the session.
type LogoutConfirm struct {
	Flow
	// ClientName is the client that asked, when known.
	ClientName string
}

func (p LogoutConfirm) info() pageInfo {
	return pageInfo{template: "logout", title: "logout.title", redirect: p.RedirectURI}
}

// SignedOut says the session has ended.
type SignedOut struct{}

func (SignedOut) info() pageInfo { return pageInfo{template: "signed_out", title: "signed_out.title"} }

// Error is the error page. It shows the status and a message, never an
// internal detail.
type Error struct {
	Message Message
}

func (Error) info() pageInfo { return pageInfo{template: "error", title: "error.title"} }

// ForgotStep is a step of the password reset.
type ForgotStep int

// The steps of the password reset, in order.
const (
	ForgotLogin    ForgotStep = iota // ask for the login
	ForgotCode                       // ask for the emailed code
	ForgotPassword                   // ask for the new password
)

// Forgot is the password reset, one step per page.
type Forgot struct {
	Flow
	Step ForgotStep
	// Login is the login the code was sent for (steps 2 and 3).
	Login string
	// Code is the code typed in step 2, carried to step 3.
	Code string
	// Notice is an informational message (e.g. MsgCodeSent).
	Notice Message
	// Error is shown inside role="alert".
	Error Message
	// PasswordMin is the configured minimum password length.
	PasswordMin int
}

func (p Forgot) info() pageInfo {
	return pageInfo{template: "forgot", title: "forgot.title", redirect: p.RedirectURI}
}

// Signup is the create-account page with every field of POST /v1/users.
type Signup struct {
	Flow
	Username  string
	Email     string
	FirstName string
	LastName  string
	// Gender is "female", "male" or "unspecified" (the default).
	Gender string
	// Errors maps a field name (as in the /v1 problem's errors) to its
	// message.
	Errors map[string]Message
	// Error is a message for the whole form.
	Error       Message
	PasswordMin int
}

func (p Signup) info() pageInfo {
	return pageInfo{template: "signup", title: "signup.title", redirect: p.RedirectURI}
}

// Account is the account page: the signed-in user's profile, email,
// password, live sessions, export and deletion, each a form of its own
// posted to Paths.Account with a field "action".
type Account struct {
	Username, Email             string
	EmailVerified               bool
	FirstName, LastName, Gender string
	// PictureURL is the current picture, "" for none.
	PictureURL string
	Sessions   []AccountSession
	// Reauth says that the session's login is older than the page lets
	// sensitive changes go without the password: the email change and the
	// deletion forms ask for it.
	Reauth      bool
	PasswordMin int
	// PasskeysOn shows the passkeys section (and loads the passkey script,
	// which "add a passkey" needs); Passkeys are the user's.
	PasskeysOn bool
	Passkeys   []AccountPasskey
	// Errors maps a form field's name to its message.
	Errors map[string]Message
	// Error is shown inside role="alert"; Notice inside role="status".
	Error, Notice Message
}

func (p Account) info() pageInfo {
	return pageInfo{template: "account", title: "account.title", script: p.PasskeysOn}
}

// AccountPasskey is one passkey on the account page.
type AccountPasskey struct {
	// ID is what the rename and delete buttons post back.
	ID, Name string
	// Created and LastUsed are shown as they are; LastUsed "" for never.
	Created, LastUsed string
}

// AccountSession is one live login on the account page.
type AccountSession struct {
	// ID is what the "end" button posts back.
	ID string
	// Client is the app's client id; "" for a browser session.
	Client    string
	UserAgent string
	// Created and LastUsed are shown as they are (UTC, minutes).
	Created, LastUsed string
	Current           bool
}

// AccountDeleted says the account is gone.
type AccountDeleted struct{}

func (AccountDeleted) info() pageInfo {
	return pageInfo{template: "account_deleted", title: "account_deleted.title"}
}

// Field is one hidden input of the form_post page.
type Field struct{ Name, Value string }

// FormPost is the OAuth 2.0 Form Post Response Mode page: a form of hidden
// fields posted to the client's redirect URI, submitted by a script, with a
// button for browsers without JavaScript.
type FormPost struct {
	// Action is the client's redirect URI. html/template lets only http(s)
	// URLs through (others become "#ZgotmplZ"), which suits form_post: an app
	// behind a custom scheme cannot receive a POST.
	Action string
	Fields []Field
}

func (p FormPost) info() pageInfo {
	return pageInfo{template: "form_post", title: "form_post.title", redirect: p.Action, formPost: true}
}

// FieldMessage is the pages' text for a field error of /v1 (its field and
// code, which the rules of CONTRACT §3 give).
func FieldMessage(field, code string) Message {
	switch code {
	case "required":
		return MsgRequired
	case "taken":
		if field == "email" || field == "new_email" {
			return MsgEmailTaken
		}
		return MsgUsernameTaken
	case "too_short":
		return MsgPasswordTooShort
	case "common":
		return MsgPasswordCommon
	case "matches_login":
		return MsgPasswordLikeLogin
	case "too_many_pixels":
		return MsgPictureTooBig
	case "too_large":
		return MsgPictureTooLarge
	case "unsupported_type":
		return MsgPictureNotImage
	}
	switch field {
	case "username":
		return MsgUsernameInvalid
	case "code":
		return MsgCodeInvalid
	case "email", "new_email":
		return MsgEmailInvalid
	case "password", "new_password", "current_password":
		// too_long, or not UTF-8: more than a password may hold.
		return MsgPasswordTooLong
	case "first_name", "last_name":
		return MsgNameInvalid
	case "gender":
		return MsgGenderInvalid
	case "picture":
		return MsgPictureNotImage
	}
	return MsgBadRequest
}
