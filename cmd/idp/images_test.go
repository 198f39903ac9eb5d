package main

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

// testJPEG is a w×h photo-like JPEG.
func testJPEG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x + y), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// gpsSecret is the datum an EXIF GPS block carries in jpegWithGPS.
const gpsSecret = "SECRET-LOCATION-51.5N"

// jpegWithGPS splices an APP1 Exif segment with a GPS IFD (latitude
// reference and a map datum holding gpsSecret) after the SOI marker.
func jpegWithGPS(t *testing.T) []byte {
	t.Helper()
	le := binary.LittleEndian
	var tiff bytes.Buffer
	tiff.WriteString("II*\x00")
	binary.Write(&tiff, le, uint32(8)) // IFD0 at 8
	// IFD0: one entry, the GPS IFD pointer.
	binary.Write(&tiff, le, uint16(1))
	binary.Write(&tiff, le, []uint16{0x8825, 4})
	binary.Write(&tiff, le, []uint32{1, 26}) // GPS IFD at 26
	binary.Write(&tiff, le, uint32(0))
	// GPS IFD: GPSLatitudeRef "N", GPSMapDatum gpsSecret.
	datum := append([]byte(gpsSecret), 0)
	binary.Write(&tiff, le, uint16(2))
	binary.Write(&tiff, le, []uint16{0x0001, 2})
	binary.Write(&tiff, le, uint32(2))
	tiff.Write([]byte{'N', 0, 0, 0})
	binary.Write(&tiff, le, []uint16{0x0012, 2})
	binary.Write(&tiff, le, []uint32{uint32(len(datum)), 26 + 2 + 2*12 + 4})
	binary.Write(&tiff, le, uint32(0))
	tiff.Write(datum)

	app1 := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	seg := []byte{0xFF, 0xE1, byte((len(app1) + 2) >> 8), byte(len(app1) + 2)}
	plain := testJPEG(t, 64, 48)
	out := append([]byte{}, plain[:2]...)
	out = append(out, seg...)
	out = append(out, app1...)
	return append(out, plain[2:]...)
}

func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	var buf bytes.Buffer
	png.Encode(&buf, image.NewNRGBA(image.Rect(0, 0, w, h)))
	return buf.Bytes()
}
