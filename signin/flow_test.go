package signin

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestFlowCodec(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := flowCodec{key: []byte(strings.Repeat("k", 32)), now: func() time.Time { return now }}
	f := flow{Params: url.Values{"client_id": {"mobile"}, "scope": {"openid"}}, Started: now.Unix(), ConsentedSID: "sid"}
	sealed := c.seal(f)

	got, err := c.open(sealed)
	if err != nil || got.Params.Get("client_id") != "mobile" || got.Started != f.Started || got.ConsentedSID != "sid" {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	other := flowCodec{key: []byte(strings.Repeat("x", 32)), now: c.now}
	late := flowCodec{key: c.key, now: func() time.Time { return now.Add(flowTTL + time.Second) }}
	payload, sig, _ := strings.Cut(sealed, ".")
	for _, tc := range []struct {
		name  string
		codec flowCodec
		value string
	}{
		{"empty", c, ""},
		{"no signature", c, payload},
		{"tampered payload", c, payload[:len(payload)-2] + "AA." + sig},
		{"tampered signature", c, payload + "." + sig[:len(sig)-1] + "A"},
		{"another key", other, sealed},
		{"expired", late, sealed},
		{"too long", c, strings.Repeat("a", maxFlowBytes+1)},
		{"not JSON", c, "bm90IGpzb24." + c.mac("bm90IGpzb24")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.codec.open(tc.value); !errors.Is(err, errFlow) {
				t.Errorf("open: %v, want errFlow", err)
			}
		})
	}
}
