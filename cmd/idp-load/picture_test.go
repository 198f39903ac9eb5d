package main

import (
	"bytes"
	"image/png"
	"testing"
)

// TestFloodPicture: the picture flood's image is a PNG just under the
// server's 5 MiB default limit, and decodes to its full size.
func TestFloodPicture(t *testing.T) {
	b, err := floodPicture()
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 5<<20 || len(b) < 4<<20 {
		t.Errorf("flood picture is %d bytes, want just under 5 MiB", len(b))
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if s := img.Bounds().Size(); s.X != floodPictureSide || s.Y != floodPictureSide {
		t.Errorf("flood picture is %v, want %d×%d", s, floodPictureSide, floodPictureSide)
	}
}
