package picture

import (
	"strings"
	"testing"
)

func TestNewKey(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		k := NewKey(ContentTypeJPEG)
		if seen[k] {
			t.Fatalf("NewKey repeated %s", k)
		}
		seen[k] = true
		if !ValidKey(k) || !strings.HasSuffix(k, ".jpg") || k[:2] != k[3:5] {
			t.Fatalf("NewKey = %q, not a valid .jpg key under its two-character directory", k)
		}
	}
	png := NewKey(ContentTypePNG)
	if !strings.HasSuffix(png, ".png") || !ValidKey(png) {
		t.Errorf("PNG key %q", png)
	}
	if contentTypeOf(NewKey(ContentTypeJPEG)) != ContentTypeJPEG || contentTypeOf(png) != ContentTypePNG {
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
