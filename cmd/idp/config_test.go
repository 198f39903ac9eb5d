package main

import (
	"bytes"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"idp/database"
	"idp/keys"
	"idp/storage"
)

// prodVars is a minimal production environment.
func prodVars(extra ...string) map[string]string {
	vars := map[string]string{
		"IDP_DATABASE_URL":          "mysql://idp:pw@db:3306/idp",
		"IDP_ISSUER":                "https://id.example.com",
		"IDP_KEY_ENCRYPTION_KEY":    testKEK,
		"IDP_REFRESH_TOKEN_SECRETS": testRefreshSecret,
		"IDP_PICTURES_URL":          "gs://pictures",
	}
	for i := 0; i+1 < len(extra); i += 2 {
		vars[extra[i]] = extra[i+1]
	}
	return vars
}

// TestConfigTypedValues: the check that validates the proxies, the refresh
// secrets and the key-encryption key also keeps what it parsed, for newApp
// to use as it is.
func TestConfigTypedValues(t *testing.T) {
	other := strings.Repeat("s", 32)
	cfg, err := configFrom(prodVars("IDP_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1",
		"IDP_REFRESH_TOKEN_SECRETS", testRefreshSecret+", "+other))
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := keys.ParseKEK(testKEK); len(cfg.kek) != 32 || !bytes.Equal(cfg.kek, want) {
		t.Errorf("kek = %x, want the parsed IDP_KEY_ENCRYPTION_KEY", cfg.kek)
	}
	if len(cfg.refreshSecrets) != 2 || string(cfg.refreshSecrets[0]) != testRefreshSecret || string(cfg.refreshSecrets[1]) != other {
		t.Errorf("refresh secrets = %q, want the two configured, in order", cfg.refreshSecrets)
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "127.0.0.1:1234"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	if got := cfg.clientIP.Of(r); got != "203.0.113.9" {
		t.Errorf("client address behind a trusted proxy = %q, want the forwarded one", got)
	}

	// The embedded default generates its key and secret: none is parsed.
	cfg, err = configFrom(map[string]string{"IDP_DATA_DIR": t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.kek != nil || cfg.refreshSecrets != nil {
		t.Errorf("embedded default: kek %x, secrets %q, want none", cfg.kek, cfg.refreshSecrets)
	}
}

// TestPublishLeadRuleIsKeys: the configuration accepts a key schedule
// exactly when the keys package does; an error names IDP_KEY_PUBLISH_LEAD.
func TestPublishLeadRuleIsKeys(t *testing.T) {
	for _, tc := range []struct{ period, lead, refresh string }{
		{"720h", "24h", "1m"},
		{"720h", "121s", "1m"},
		{"720h", "120s", "1m"},
		{"720h", "90s", "1m"}, // within the refresh interval's double only
		{"720h", "59s", "1m"},
		{"24h", "24h", "1m"},
		{"24h", "23h", "1m"},
	} {
		_, cerr := configFrom(prodVars("IDP_KEY_ROTATION_PERIOD", tc.period, "IDP_KEY_PUBLISH_LEAD", tc.lead, "IDP_KEY_REFRESH_INTERVAL", tc.refresh))
		period, _ := time.ParseDuration(tc.period)
		lead, _ := time.ParseDuration(tc.lead)
		refresh, _ := time.ParseDuration(tc.refresh)
		_, kerr := keys.NewManager(storage.New(&database.DB{}), make([]byte, 32), keys.Options{
			RotationPeriod: period, PublishLead: lead, RefreshInterval: refresh, RetainRetired: time.Hour})
		if (cerr == nil) != (kerr == nil) {
			t.Errorf("period %s, lead %s, refresh %s: configuration %v, keys %v: want the same verdict", tc.period, tc.lead, tc.refresh, cerr, kerr)
		}
		if cerr != nil && !strings.Contains(cerr.Error(), "IDP_KEY_PUBLISH_LEAD") {
			t.Errorf("error %q does not name IDP_KEY_PUBLISH_LEAD", cerr)
		}
	}
}

func TestParseWebAuthnOrigins(t *testing.T) {
	for v, want := range map[string][]string{
		"": nil,
		" https://app.example.com , android:apk-key-hash:Ab-_09": {"https://app.example.com", "android:apk-key-hash:Ab-_09"},
		"http://localhost:3000":                                  {"http://localhost:3000"},
	} {
		got, err := parseWebAuthnOrigins(v)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("parseWebAuthnOrigins(%q) = %q, %v; want %q", v, got, err, want)
		}
	}
	for _, v := range []string{"app.example.com", "https://app.example.com/path", "ftp://x", "android:apk-key-hash:", "android:apk-key-hash:a/b", "https://u@x"} {
		if _, err := parseWebAuthnOrigins(v); err == nil {
			t.Errorf("parseWebAuthnOrigins(%q) accepted", v)
		}
	}
}
