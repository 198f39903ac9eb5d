package signin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// flow is an authorization (or logout) request carried through the pages:
// its parameters, when it began, and what has happened since. It travels
// in the pages' links and forms, signed, so that no server state is kept
// for a request that may never finish and any replica can continue it.
//
// Started is what prompt=login and max_age are measured against: a login
// at or after it satisfies them, one before it does not. ConsentedSID is
// set when the user allowed the request on the consent page, bound to the
// browser session that did, so that prompt=consent is satisfied once and
// only for that session.
type flow struct {
	Params       url.Values `json:"p"`
	Started      int64      `json:"t"`
	ConsentedSID string     `json:"c,omitempty"`
}

// flowTTL bounds how long a page may sit in a browser before its form is
// refused as expired.
const flowTTL = time.Hour

// maxFlowBytes bounds a flow value before anything is decoded: more than
// the parameters that fit in a request's header (32 KiB) take, encoded.
const maxFlowBytes = 64 << 10

// errFlow is wrapped by every refusal of a flow value.
var errFlow = errors.New("signin: invalid or expired request")

// flowCodec signs and verifies flows with an HMAC-SHA256 key.
type flowCodec struct {
	key []byte
	now func() time.Time
}

func (c flowCodec) mac(payload string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("idp flow v1\x00"))
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// seal encodes f.
func (c flowCodec) seal(f flow) string {
	b, _ := json.Marshal(f) // url.Values, int64 and string always encode
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + c.mac(payload)
}

// open verifies and decodes a sealed flow.
func (c flowCodec) open(s string) (flow, error) {
	if s == "" || len(s) > maxFlowBytes {
		return flow{}, fmt.Errorf("%w: missing or too long", errFlow)
	}
	payload, sig, ok := strings.Cut(s, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(c.mac(payload))) {
		return flow{}, fmt.Errorf("%w: bad signature", errFlow)
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return flow{}, fmt.Errorf("%w: %w", errFlow, err)
	}
	var f flow
	if err := json.Unmarshal(b, &f); err != nil {
		return flow{}, fmt.Errorf("%w: %w", errFlow, err)
	}
	if age := c.now().Sub(time.Unix(f.Started, 0)); age > flowTTL || age < -time.Minute {
		return flow{}, fmt.Errorf("%w: expired", errFlow)
	}
	return f, nil
}
