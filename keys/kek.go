package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// KEKSize is the length of a key-encryption key: AES-256.
const KEKSize = 32

// ErrKEKMismatch means a private key could not be decrypted: the
// key-encryption key is not the one the key was sealed with (or the row was
// tampered with, which AES-GCM cannot tell apart).
var ErrKEKMismatch = errors.New("keys: the key-encryption key does not match the one the signing keys were encrypted with")

// NewKEK returns a new key-encryption key: 32 random bytes, base64.
func NewKEK() string {
	b := make([]byte, KEKSize)
	rand.Read(b) // never fails (crypto/rand panics rather than return short)
	return base64.StdEncoding.EncodeToString(b)
}

// ParseKEK decodes a key-encryption key given as base64 (standard or URL
// alphabet, padded or not) or as 64 hex digits. It must be exactly 32 bytes.
// Error messages describe the input's shape, never its value, because the
// value is a secret that ends up in logs otherwise.
func ParseKEK(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("keys: key-encryption key is empty")
	}
	if len(s) == 2*KEKSize {
		if b, err := hex.DecodeString(s); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{
		base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding,
	} {
		b, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(b) != KEKSize {
			return nil, fmt.Errorf("keys: key-encryption key is %d bytes, want %d (32 random bytes, base64-encoded)", len(b), KEKSize)
		}
		return b, nil
	}
	return nil, fmt.Errorf("keys: key-encryption key (%d characters) is neither base64 nor %d hex digits", len(s), 2*KEKSize)
}

// LoadOrCreateKEKFile reads the key-encryption key from path, creating the
// file with a new key (mode 0600) when it does not exist. It serves the
// embedded single-machine setup, where nobody is expected to manage a KEK.
// A file that group or others may read is refused: the KEK protects every
// signing key in the database.
func LoadOrCreateKEKFile(path string) ([]byte, error) {
	kek, err := readKEKFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return kek, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("keys: create directory for key-encryption key: %w", err)
	}
	// Write a temporary file, then link it into place: the link fails if
	// another process got there first, and a reader never sees a
	// half-written file. os.CreateTemp opens with O_EXCL and mode 0600.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kek-*")
	if err != nil {
		return nil, fmt.Errorf("keys: create key-encryption key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(NewKEK() + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("keys: write key-encryption key: %w", err)
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("keys: create key-encryption key: %w", err)
	}
	// Read back whichever file won.
	return readKEKFile(path)
}

func readKEKFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("keys: key-encryption key file: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("keys: key-encryption key file: %w", err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("keys: key-encryption key file %s has mode %04o: group and others must not read it (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return nil, fmt.Errorf("keys: read key-encryption key file %s: %w", path, err)
	}
	kek, err := ParseKEK(string(b))
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return kek, nil
}

// aeadSealer seals private keys under the KEK.
type aeadSealer struct{ gcm cipher.AEAD }

func newSealer(kek []byte) (aeadSealer, error) {
	if len(kek) != KEKSize {
		return aeadSealer{}, fmt.Errorf("keys: key-encryption key is %d bytes, want %d", len(kek), KEKSize)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return aeadSealer{}, fmt.Errorf("keys: %w", err)
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return aeadSealer{}, fmt.Errorf("keys: %w", err)
	}
	return aeadSealer{gcm: gcm}, nil
}

// seal encrypts plaintext with a random nonce, which it prepends. The kid is
// the additional data, so a sealed key moved to another row fails to open.
// Random 96-bit nonces are safe here: a KEK seals one key a month.
func (s aeadSealer) seal(plaintext []byte, kid string) []byte {
	nonce := make([]byte, s.gcm.NonceSize(), s.gcm.NonceSize()+len(plaintext)+s.gcm.Overhead())
	rand.Read(nonce)
	return s.gcm.Seal(nonce, nonce, plaintext, []byte(kid))
}

// open reverses seal. Its error wraps ErrKEKMismatch and carries no key
// material.
func (s aeadSealer) open(sealed []byte, kid string) ([]byte, error) {
	n := s.gcm.NonceSize()
	if len(sealed) < n+s.gcm.Overhead() {
		return nil, fmt.Errorf("keys: signing key %s: sealed private key is truncated", kid)
	}
	plain, err := s.gcm.Open(nil, sealed[:n], sealed[n:], []byte(kid))
	if err != nil {
		return nil, fmt.Errorf("keys: cannot decrypt signing key %s: %w", kid, ErrKEKMismatch)
	}
	return plain, nil
}
