package fake

import (
	"strings"
	"testing"
)

// Respellings are the other spellings of an HMAC token (two parts of 32
// bytes in unpadded base64url, "key.signature") that a lenient base64
// decoder reads as the same bytes (the unused low bits of each part's last
// character), and the token with a line break: each must be refused.
func Respellings(t testing.TB, token string) []string {
	t.Helper()
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	key, sig, ok := strings.Cut(token, ".")
	if !ok || len(key) != 43 || len(sig) != 43 {
		t.Fatalf("unexpected token shape %q", token)
	}
	var out []string
	for part, p := range []string{key, sig} {
		last := strings.IndexByte(alphabet, p[len(p)-1])
		for low := range 4 {
			if v := last&^3 | low; v != last {
				q := []string{key, sig}
				q[part] = p[:len(p)-1] + string(alphabet[v])
				out = append(out, q[0]+"."+q[1])
			}
		}
	}
	return append(out, key[:10]+"\n"+key[10:]+"."+sig)
}
