package picture

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	img := Image{Data: []byte("picture bytes"), ContentType: ContentTypeJPEG}

	k := Key(secret, img)
	if k2 := Key(secret, Image{Data: []byte("picture bytes"), ContentType: ContentTypeJPEG}); k2 != k {
		t.Errorf("same bytes, different keys: %s, %s", k, k2)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(img.Data)
	sum := hex.EncodeToString(mac.Sum(nil))
	if want := sum[:2] + "/" + sum + ".jpg"; k != want {
		t.Errorf("key %s, want %s (HMAC-SHA256 of the data)", k, want)
	}
	plain := sha256.Sum256(img.Data)
	if strings.Contains(k, hex.EncodeToString(plain[:])) {
		t.Error("key is the plain SHA-256 of the data: anyone can derive it")
	}
	if k2 := Key([]byte("another secret, just as long...."), img); k2 == k {
		t.Error("another secret gives the same key")
	}
	if k2 := Key(secret, Image{Data: []byte("picture bytez"), ContentType: ContentTypeJPEG}); k2 == k {
		t.Error("other bytes give the same key")
	}
	if !ValidKey(k) {
		t.Errorf("ValidKey(%q) = false", k)
	}
	png := Key(secret, Image{Data: img.Data, ContentType: ContentTypePNG})
	if !strings.HasSuffix(png, ".png") || !ValidKey(png) {
		t.Errorf("PNG key %q", png)
	}
	if contentTypeOf(k) != ContentTypeJPEG || contentTypeOf(png) != ContentTypePNG {
		t.Error("contentTypeOf does not invert the extension")
	}
}

func TestValidKeyRefuses(t *testing.T) {
	h := strings.Repeat("3f", 32)
	good := "3f/" + h + ".jpg"
	if !ValidKey(good) {
		t.Fatalf("ValidKey(%q) = false", good)
	}
	for _, k := range []string{
		"",
		h + ".jpg",         // no directory
		"ab/" + h + ".jpg", // directory is not the hash's prefix
		"3F/" + strings.ToUpper(h) + ".jpg",
		"3f/" + h + ".JPG",
		"3f/" + h + ".gif",
		"3f/" + h,
		"3f/" + h + ".jpg/",
		"/3f/" + h + ".jpg",
		"3f/" + h[:63] + ".jpg",
		"3f/" + h + "0.jpg",
		"3f/" + h[:62] + "g0.jpg",
		"../" + h + ".jpg",
		"3f/../" + h[6:] + ".jpg",
		"3f/" + h[:60] + "/..." + ".jpg",
		"3f\\" + h + ".jpg",
		"3f/3f/" + h + ".jpg",
		"3f/" + h + ".jpg\x00",
		"3f/" + h + ".jpg?x",
	} {
		if ValidKey(k) {
			t.Errorf("ValidKey(%q) = true", k)
		}
	}
}
