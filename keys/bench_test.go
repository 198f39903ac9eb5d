package keys

import (
	"fmt"
	"testing"

	"idp/database/databasetest"
	"idp/storage"
)

// benchPayload is the size of a typical access token's claims.
var benchPayload = []byte(`{"iss":"https://idp.example.com","sub":"8f14e45f-ceea-467f-a0e6-4b1b2c3d4e5f","aud":["https://api.example.com"],"client_id":"web-app","scope":"openid profile email offline_access","iat":1893456000,"nbf":1893456000,"exp":1893459600,"jti":"c4ca4238-a0b9-3382-8dcc-509a6f75849b"}`)

func benchManager(b *testing.B, bits int) *Manager {
	b.Helper()
	db := databasetest.Open(b, databasetest.SQLiteURL(b))
	opts := testOptions(newClock())
	opts.Size = bits
	return loadedManager(b, storage.New(db), opts)
}

// BenchmarkSign measures RS256 signatures per second across all cores: the
// ceiling for token issuance on this machine.
func BenchmarkSign(b *testing.B) {
	for _, bits := range []int{2048, 3072} {
		b.Run(fmt.Sprint(bits), func(b *testing.B) {
			m := benchManager(b, bits)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := m.Sign(benchPayload, "at+jwt"); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sigs/s")
		})
	}
}

// BenchmarkVerify measures RS256 verifications per second across all cores.
func BenchmarkVerify(b *testing.B) {
	for _, bits := range []int{2048, 3072} {
		b.Run(fmt.Sprint(bits), func(b *testing.B) {
			m := benchManager(b, bits)
			tok, err := m.Sign(benchPayload, "at+jwt")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := m.Verify(tok); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "verifies/s")
		})
	}
}
