package picture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"testing"

	"idp/fake"
)

// FuzzProcess checks that no input makes Process panic, that every failure
// is one of its three errors, and that every success is a decodable JPEG or
// PNG within the limits. The seeds are small valid images of each format,
// plus the hostile ones the unit tests use.
func FuzzProcess(f *testing.F) {
	small := halves(12, 8, red, blue)
	withAlpha := halves(12, 8, color.Transparent, green)
	f.Add(encodeJPEG(f, small))
	f.Add(withMetadata(encodeJPEG(f, small), binary.BigEndian, 6))
	f.Add(withMetadata(encodeJPEG(f, small), binary.LittleEndian, 7))
	f.Add(progressiveJPEG(16, 3))
	f.Add(encodePNG(f, small))
	f.Add(encodePNG(f, withAlpha))
	f.Add(encodePNG(f, image.NewGray(image.Rect(0, 0, 300, 2))))
	f.Add(animatedGIF(f, 10, 6, red, blue))
	f.Add(animatedGIF(f, 10, 6, color.Transparent, blue))
	f.Add(readTestdata(f, "gopher-doc.1bpp.lossless.webp"))
	f.Add(readTestdata(f, "blue-purple-pink.lossy.webp"))
	f.Add(fake.PNGBomb(50000, 50000))
	f.Add([]byte("not an image"))

	lim := Limits{MaxBytes: 256 << 10, MaxSide: 512, OutputMaxSide: 64}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Process(bytes.NewReader(data), lim)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrNotImage) && !errors.Is(err, ErrDimensions) {
				t.Fatalf("unexpected kind of error: %v", err)
			}
			return
		}
		if img.Width < 1 || img.Height < 1 || img.Width > lim.OutputMaxSide || img.Height > lim.OutputMaxSide {
			t.Fatalf("output %d×%d, outside 1–%d", img.Width, img.Height, lim.OutputMaxSide)
		}
		decodeOutput(t, img)
	})
}
