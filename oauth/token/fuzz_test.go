package token

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"

	"idp/database/databasetest"
	"idp/keys"
	"idp/storage"
)

const fuzzIssuer = "http://idp.test"

// signedParts is a compact JWS reduced to what its signature covers: the
// decoded header and payload, and the decoded signature.
type signedParts struct{ header, payload, signature string }

// decodeCompact decodes a compact JWS as go-jose does (unpadded base64url,
// whose decoder skips CR and LF), or reports false.
func decodeCompact(token string) (signedParts, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return signedParts{}, false
	}
	var dec [3]string
	for i, p := range parts {
		b, err := base64.RawURLEncoding.DecodeString(p)
		if err != nil {
			return signedParts{}, false
		}
		dec[i] = string(b)
	}
	return signedParts{dec[0], dec[1], dec[2]}, true
}

// FuzzBearerToken fuzzes the verification of access tokens (ParseAccessToken)
// and the parsing of the Authorization header (BearerToken), with a real key
// manager on SQLite. The seeds are tokens the manager signed in this run,
// good and bad (other typ, audience as a string or an array, exp of every
// JSON type, duplicate keys), and forgeries (alg none, HS256, a made-up
// kid, a huge header, truncations, garbage).
//
// Properties: nothing panics; every error wraps a fosite error, and one of
// the two ParseAccessToken documents; a token that parses has this issuer
// in iss and aud, a subject, a client and an exp in the future; and it is,
// once decoded, a token the manager signed: a change to its bytes that the
// decoding does not undo makes it fail. The mutation arguments (op, pos, b)
// change one byte of a valid token, so that mutations stay meaningful
// across runs whose keys differ.
func FuzzBearerToken(f *testing.F) {
	db := databasetest.Open(f, databasetest.SQLiteURL(f))
	m, err := keys.NewManager(storage.New(db), bytes.Repeat([]byte{42}, 32), keys.Options{RetainRetired: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	if err := m.Load(context.Background()); err != nil {
		f.Fatal(err)
	}
	ts, err := NewStrategy(m, fuzzIssuer, bytes.Repeat([]byte{7}, 32), nil, time.Now)
	if err != nil {
		f.Fatal(err)
	}

	now := time.Now()
	exp := now.Add(time.Hour).Unix()
	signed := map[signedParts]bool{} // everything the manager signed
	sign := func(payload, typ string) string {
		tok, err := m.Sign([]byte(payload), typ)
		if err != nil {
			f.Fatal(err)
		}
		p, ok := decodeCompact(tok)
		if !ok {
			f.Fatalf("cannot decode a signed token %q", tok)
		}
		signed[p] = true
		return tok
	}
	good := AccessClaims{
		Issuer: fuzzIssuer, Subject: "42", Audience: Audience{fuzzIssuer, "https://api.example.com"},
		ExpiresAt: exp, IssuedAt: now.Unix(), AuthTime: now.Unix(), ID: "jti-1", ClientID: "mobile", Scope: "openid profile",
	}
	goodPayload, _ := json.Marshal(good)
	valid := []string{
		sign(string(goodPayload), TypeAccessToken),
		sign(string(goodPayload), "application/at+jwt"),
		sign(string(goodPayload), "AT+JWT"),
		sign(`{"iss":"`+fuzzIssuer+`","sub":"stats-job","aud":"`+fuzzIssuer+`","exp":`+strconv.FormatInt(exp, 10)+`,"client_id":"stats-job"}`, TypeAccessToken),
		// Duplicate keys decode to the last one, as encoding/json does.
		sign(`{"iss":"https://evil","iss":"`+fuzzIssuer+`","sub":"42","aud":"`+fuzzIssuer+`","exp":`+strconv.FormatInt(exp, 10)+`,"client_id":"mobile"}`, TypeAccessToken),
	}
	claims := func(extra string) string {
		return `{"iss":"` + fuzzIssuer + `","sub":"42","aud":["` + fuzzIssuer + `"],"client_id":"mobile","jti":"j"` + extra + `}`
	}
	expStr := strconv.FormatInt(exp, 10)
	rejected := []string{
		sign(string(goodPayload), TypeIDToken),
		sign(string(goodPayload), ""),
		sign(string(goodPayload), "at+jwt; charset=utf-8"),
		sign(claims(`,"exp":`+expStr+`.5`), TypeAccessToken),
		sign(claims(`,"exp":"`+expStr+`"`), TypeAccessToken),
		sign(claims(`,"exp":1e400`), TypeAccessToken),
		sign(claims(`,"exp":99999999999999999999`), TypeAccessToken),
		sign(claims(`,"exp":-1`), TypeAccessToken),
		sign(claims(``), TypeAccessToken),
		sign(claims(`,"exp":`+expStr+`,"aud":"https://other.example"`), TypeAccessToken),
		sign(claims(`,"exp":`+expStr+`,"aud":[]`), TypeAccessToken),
		sign(claims(`,"exp":`+expStr+`,"aud":null`), TypeAccessToken),
		sign(claims(`,"exp":`+expStr+`,"aud":7`), TypeAccessToken),
		sign(claims(`,"exp":`+expStr+`,"aud":[7]`), TypeAccessToken),
		sign(claims(`,"exp":`+expStr+`,"iss":"`+fuzzIssuer+`/"`), TypeAccessToken),
		sign(claims(`,"exp":`+expStr+`,"sub":""`), TypeAccessToken),
		sign(claims(`,"exp":`+expStr+`,"client_id":""`), TypeAccessToken),
		sign(claims(`,"exp":`+expStr+`,"sub":42`), TypeAccessToken),
		sign(`{"iss":"`+fuzzIssuer+`","iss":"https://evil","sub":"42","aud":"`+fuzzIssuer+`","exp":`+expStr+`,"client_id":"mobile"}`, TypeAccessToken),
		sign(`[]`, TypeAccessToken),
		sign(`null`, TypeAccessToken),
		sign(``, TypeAccessToken),
		sign("\xff", TypeAccessToken),
		sign(claims(`,"exp":`+expStr)+` trailing`, TypeAccessToken),
	}

	b64 := base64.RawURLEncoding.EncodeToString
	kid := func(tok string) string {
		h, _ := decodeCompact(tok)
		var v struct {
			Kid string `json:"kid"`
		}
		json.Unmarshal([]byte(h.header), &v)
		return v.Kid
	}(valid[0])
	body := strings.Split(valid[0], ".")[1]
	sig := strings.Split(valid[0], ".")[2]
	hs256 := func(header string) string {
		mac := hmac.New(sha256.New, []byte("public key as a secret"))
		in := b64([]byte(header)) + "." + body
		mac.Write([]byte(in))
		return in + "." + b64(mac.Sum(nil))
	}
	forged := []string{
		b64([]byte(`{"alg":"none","kid":"`+kid+`","typ":"at+jwt"}`)) + "." + body + ".",
		b64([]byte(`{"alg":"none","kid":"`+kid+`","typ":"at+jwt"}`)) + "." + body + "." + sig,
		hs256(`{"alg":"HS256","kid":"` + kid + `","typ":"at+jwt"}`),
		b64([]byte(`{"alg":"RS256","kid":"made-up","typ":"at+jwt"}`)) + "." + body + "." + sig,
		b64([]byte(`{"alg":"RS256","typ":"at+jwt"}`)) + "." + body + "." + sig,
		b64([]byte(`{"alg":"RS256","kid":"`+kid+`","typ":"at+jwt","x":"`+strings.Repeat("A", 100<<10)+`"}`)) + "." + body + "." + sig,
		b64([]byte(`{"alg":"RS256","kid":"`+kid+`","typ":"at+jwt","crit":["exp"]}`)) + "." + body + "." + sig,
		b64([]byte(`{"alg":"RS256","kid":"`+kid+`","typ":["at+jwt"]}`)) + "." + body + "." + sig,
		b64([]byte(`{"alg":"RS256","kid":"`+kid+`","kid":"other","typ":"at+jwt"}`)) + "." + body + "." + sig,
		b64([]byte(`{"alg":"RS256","kid":"`+kid+`","typ":"at+jwt","b64":false}`)) + "." + body + "." + sig,
		b64([]byte(`{"alg":"RS256","kid":"`+kid+`","typ":"at+jwt","jwk":{"kty":"oct","k":"AAAA"}}`)) + "." + body + "." + sig,
		valid[0][:len(valid[0])/2],
		valid[0][:len(valid[0])-1],
		valid[0] + ".",
		valid[0] + valid[0],
		"." + valid[0],
		strings.Replace(valid[0], ".", "..", 1),
		strings.Split(valid[0], ".")[0] + "." + body,
		strings.Split(valid[0], ".")[0] + "." + strings.Split(valid[3], ".")[1] + "." + sig,
		strings.Split(valid[0], ".")[0] + "=." + body + "." + sig,
		strings.Split(valid[0], ".")[0] + "\n." + body + "\r\n." + sig + "\n",
		strings.ReplaceAll(valid[0], "-", "+"),
		valid[0][:len(valid[0])-1] + otherSpelling(valid[0][len(valid[0])-1]),
		`{"payload":"` + body + `","protected":"` + strings.Split(valid[0], ".")[0] + `","signature":"` + sig + `"}`,
		"", ".", "..", "...", "a.b.c", "e30.e30.", "e30.e30.e30", "!!!.***.???",
		strings.Repeat("QUFB", 5000), strings.Repeat(".", 1000),
	}

	// The seeds mean what they say.
	for _, tok := range valid {
		if _, err := ts.ParseAccessToken(tok); err != nil {
			f.Fatalf("a valid token was refused: %v", err)
		}
	}
	for _, tok := range rejected {
		if _, err := ts.ParseAccessToken(tok); err == nil {
			f.Fatalf("%q was accepted", tok)
		}
	}
	// The base64 decoder skips CR and LF and ignores the unused low bits
	// of the last character, so a few other spellings of a valid token
	// decode to the very bytes signed, and verify. Verify refuses them all
	// the same: the storage knows a token by the text of its signature.
	for _, tok := range forged {
		if _, err := ts.ParseAccessToken(tok); err == nil {
			if p, _ := decodeCompact(tok); !signed[p] {
				f.Fatalf("%q was accepted", tok)
			}
		}
	}

	add := func(header, token string, op uint8, pos uint16, b byte) {
		f.Add(header, token, op, pos, b)
	}
	for _, tok := range slices.Concat(valid, rejected, forged) {
		add("Bearer "+tok, tok, 0, 0, 0)
	}
	for _, h := range []string{
		"", "Bearer", "Bearer ", "Bearer  ", "bearer " + valid[0], "BEARER  " + valid[0] + "  ", "Bearer\t" + valid[0],
		"Bearer " + valid[0] + " " + valid[1], "Basic " + valid[0], "Bearer:" + valid[0], " Bearer " + valid[0],
		"Bearer \u00a0" + valid[0], "Bearer \x00", "Bearer\u00a0" + valid[0], "Token " + valid[0],
	} {
		add(h, "", 0, 0, 0)
	}
	for _, pos := range []uint16{0, 5, uint16(len(valid[0]) / 2), uint16(len(valid[0]) - 1), uint16(strings.LastIndexByte(valid[0], '.'))} {
		for _, op := range []uint8{1, 2, 3, 4} {
			add("", "", op, pos, 'A')
		}
	}
	add("", "", 1, uint16(len(valid[0])-1), valid[0][len(valid[0])-1]+1)

	check := func(t *testing.T, token string) {
		t.Helper()
		c, err := ts.ParseAccessToken(token)
		if err != nil {
			if c != nil {
				t.Fatalf("claims and an error: %+v, %v", c, err)
			}
			var rfc *fosite.RFC6749Error
			if !errors.As(err, &rfc) {
				t.Fatalf("%q: error %v wraps no fosite error", token, err)
			}
			if !errors.Is(err, fosite.ErrRequestUnauthorized) && !errors.Is(err, fosite.ErrTokenExpired) {
				t.Fatalf("%q: error %v is neither request_unauthorized nor token expired", token, err)
			}
			return
		}
		if c == nil {
			t.Fatalf("%q: no claims and no error", token)
		}
		parts, ok := decodeCompact(token)
		if !ok || !signed[parts] {
			t.Fatalf("%q parsed, yet the manager did not sign it", token)
		}
		switch {
		case c.Issuer != fuzzIssuer:
			t.Fatalf("%q parsed with iss %q", token, c.Issuer)
		case !slices.Contains(c.Audience, fuzzIssuer):
			t.Fatalf("%q parsed with aud %q", token, c.Audience)
		case c.Subject == "" || c.ClientID == "":
			t.Fatalf("%q parsed with sub %q and client_id %q", token, c.Subject, c.ClientID)
		case c.ExpiresAt <= time.Now().Unix():
			t.Fatalf("%q parsed with exp %d, in the past", token, c.ExpiresAt)
		}
	}

	f.Fuzz(func(t *testing.T, header, token string, op uint8, pos uint16, b byte) {
		check(t, token)

		// BearerToken takes "Bearer" in any letter case, one space, and
		// the rest trimmed.
		r := &http.Request{Header: http.Header{"Authorization": {header}}}
		got, ok := BearerToken(r)
		want, wantOK := "", false
		if len(header) >= 7 && strings.EqualFold(header[:7], "Bearer ") {
			want = strings.TrimSpace(header[7:])
			wantOK = want != ""
		}
		if got != want || ok != wantOK {
			t.Fatalf("BearerToken(%q) = %q, %v; want %q, %v", header, got, ok, want, wantOK)
		}
		if ok {
			check(t, got)
		}

		// One change to a valid token.
		if op == 0 {
			return
		}
		tok := []byte(valid[int(op>>3)%len(valid)])
		i := int(pos) % len(tok)
		switch (op & 7) % 4 {
		case 0:
			tok[i] = b
		case 1:
			tok = slices.Insert(tok, i, b)
		case 2:
			tok = slices.Delete(tok, i, i+1)
		case 3:
			tok[i] ^= 1 << (b % 8)
		}
		check(t, string(tok))
	})
}

// otherSpelling is the base64url character that differs from c in the lowest
// bit only: the last character of a 256-byte signature carries two bits, so
// both decode alike.
func otherSpelling(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return string(alphabet[strings.IndexByte(alphabet, c)^1])
}
