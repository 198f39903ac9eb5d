package keys

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestParseKEK(t *testing.T) {
	// 0xfb 0xff make the standard and URL alphabets differ (+/ vs -_).
	key := bytes.Repeat([]byte{0xfb, 0xff, 0x01, 0x7e}, 8)
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"base64 std padded", base64.StdEncoding.EncodeToString(key), true},
		{"base64 std raw", base64.RawStdEncoding.EncodeToString(key), true},
		{"base64 url padded", base64.URLEncoding.EncodeToString(key), true},
		{"base64 url raw", base64.RawURLEncoding.EncodeToString(key), true},
		{"hex lower", hex.EncodeToString(key), true},
		{"hex upper", strings.ToUpper(hex.EncodeToString(key)), true},
		{"trailing newline", base64.StdEncoding.EncodeToString(key) + "\n", true},
		{"NewKEK output", NewKEK(), true},
		{"31 bytes base64", base64.StdEncoding.EncodeToString(key[:31]), false},
		{"33 bytes base64", base64.StdEncoding.EncodeToString(append(key, 1)), false},
		{"16 bytes base64", base64.StdEncoding.EncodeToString(key[:16]), false},
		{"63 hex digits", hex.EncodeToString(key)[:63], false},
		{"66 hex digits", hex.EncodeToString(append(key, 1)), false},
		{"garbage", "this is not a key-encryption key!", false},
		{"hex with a non-digit", "zz" + hex.EncodeToString(key)[2:], false},
		{"empty", "", false},
		{"spaces", "   ", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseKEK(tt.in)
			if !tt.ok {
				if err == nil {
					t.Fatalf("ParseKEK accepted %q", tt.in)
				}
				if in := strings.TrimSpace(tt.in); in != "" && strings.Contains(err.Error(), in) {
					t.Errorf("error echoes the input: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKEK: %v", err)
			}
			if len(got) != 32 {
				t.Fatalf("ParseKEK returned %d bytes", len(got))
			}
			if tt.name != "NewKEK output" && !bytes.Equal(got, key) {
				t.Errorf("ParseKEK = %x, want %x", got, key)
			}
		})
	}
}

func TestNewKEKIsRandom(t *testing.T) {
	if NewKEK() == NewKEK() {
		t.Fatal("two NewKEK calls returned the same key")
	}
}

func TestLoadOrCreateKEKFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "kek")
	kek, err := LoadOrCreateKEKFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(kek) != 32 {
		t.Fatalf("created KEK is %d bytes", len(kek))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("created with mode %04o, want 0600", st.Mode().Perm())
	}
	again, err := LoadOrCreateKEKFile(path)
	if err != nil || !bytes.Equal(again, kek) {
		t.Fatalf("second call = %x, %v; want the same key", again, err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the KEK (temporary file left behind?)", len(entries))
	}

	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadOrCreateKEKFile(path)
	if err == nil || !strings.Contains(err.Error(), "0644") || !strings.Contains(err.Error(), "must not read") {
		t.Fatalf("0644 file: err = %v, want a refusal naming the mode", err)
	}
	if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(kek)) {
		t.Errorf("error echoes the key: %v", err)
	}
}

func TestLoadOrCreateKEKFileBadContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	if err := os.WriteFile(path, []byte("short-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadOrCreateKEKFile(path)
	if err == nil || strings.Contains(err.Error(), "short-secret") {
		t.Fatalf("err = %v, want a refusal that does not echo the content", err)
	}
}

// Two processes starting at once must end up with the same KEK.
func TestLoadOrCreateKEKFileConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kek")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, err := LoadOrCreateKEKFile(path)
			if err != nil {
				t.Error(err)
			}
			keys[i] = k
		})
	}
	wg.Wait()
	for _, k := range keys[1:] {
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("concurrent callers got different keys")
		}
	}
}
