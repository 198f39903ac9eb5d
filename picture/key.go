package picture

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// ErrBadKey is returned by a Store for a key that Key could not have made.
// Stores refuse such keys rather than let one name an arbitrary file or
// object.
var ErrBadKey = errors.New("picture: malformed key")

// hashLen is the length of the hex HMAC-SHA256 in a key.
const hashLen = 2 * sha256.Size

// Key names a processed picture in a Store: "3f/3fa9…c1.jpg", the hex
// HMAC-SHA256 of the image bytes under secret, after a two-character
// directory that spreads the files, with the extension of the content type.
//
// Content-derived keys make storing idempotent (a retry writes the same
// object) and let stores mark objects immutable, so caches keep them for
// good. The HMAC makes them unguessable: without secret, knowing a picture
// does not tell its key, so its URL cannot be derived. secret should be at
// least 32 random bytes and must stay the same for the life of the stored
// keys.
//
// Two users who upload the same picture get the same key, and so share one
// stored object: delete an object only once no user refers to its key.
func Key(secret []byte, img Image) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(img.Data)
	sum := hex.EncodeToString(mac.Sum(nil))
	return sum[:2] + "/" + sum + extension(img.ContentType)
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

// ValidKey reports whether key has exactly the form Key produces. It allows
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
