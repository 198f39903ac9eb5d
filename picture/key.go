package picture

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
)

// ErrBadKey is returned by a Store for a key that NewKey could not have made.
// Stores refuse such keys rather than let one name an arbitrary file or
// object.
var ErrBadKey = errors.New("picture: malformed key")

// hashLen is the length of the random hex name in a key.
const hashLen = 64

// NewKey names a new object for a processed picture: "3f/3fa9…c1.jpg", 32
// random bytes in hex after a two-character directory that spreads the
// files, with the extension of the content type.
//
// Every upload gets a key of its own, even of bytes stored before: no two
// requests ever write or delete the same object, so a request that loses a
// race can clean up what it stored without touching what a winner's row
// names. A key never names other bytes, which lets stores mark objects
// immutable and caches keep them for good; being random, it cannot be
// guessed, so a picture's URL cannot be derived from the picture or the
// user.
func NewKey(contentType string) string {
	sum := hex.EncodeToString(randomBytes(hashLen / 2))
	return sum[:2] + "/" + sum + extension(contentType)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails: since Go 1.24 it crashes rather than return an error
	return b
}

// extension maps a content type to the key's file extension; the directory
// store serves the content type back from it.
func extension(contentType string) string {
	switch contentType {
	case ContentTypeJPEG:
		return ".jpg"
	case ContentTypePNG:
		return ".png"
	default:
		return ".bin"
	}
}

// contentTypeOf is the inverse of extension for a valid key.
func contentTypeOf(key string) string {
	switch {
	case strings.HasSuffix(key, ".jpg"):
		return ContentTypeJPEG
	case strings.HasSuffix(key, ".png"):
		return ContentTypePNG
	default:
		return "application/octet-stream"
	}
}

// ValidKey reports whether key has exactly the form NewKey produces. It allows
// nothing but lower-case hex, one slash and the extension, so a valid key can
// never climb out of a directory ("..", absolute paths, back-slashes).
func ValidKey(key string) bool {
	dir, file, ok := strings.Cut(key, "/")
	if !ok || len(dir) != 2 || len(file) != hashLen+4 || file[:2] != dir {
		return false
	}
	switch file[hashLen:] {
	case ".jpg", ".png", ".bin":
	default:
		return false
	}
	for _, c := range file[:hashLen] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
