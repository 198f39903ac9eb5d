package picture

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"testing"
)

// Colours the tests paint with and then look for.
var (
	red   = color.RGBA{R: 255, A: 255}
	blue  = color.RGBA{B: 255, A: 255}
	green = color.RGBA{G: 255, A: 255}
)

// halves returns a w×h image whose left half is left and right half right.
func halves(w, h int, left, right color.Color) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			if x < w/2 {
				m.Set(x, y, left)
			} else {
				m.Set(x, y, right)
			}
		}
	}
	return m
}

func encodeJPEG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func encodePNG(t testing.TB, m image.Image) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// byteOrder is binary.BigEndian or binary.LittleEndian, as TIFF allows.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// gpsRationals encodes three RATIONALs (numerator, denominator pairs) as
// EXIF stores them, so the tests can look for those exact bytes.
func gpsRationals(bo byteOrder, v [6]uint32) []byte {
	var b []byte
	for _, n := range v {
		b = bo.AppendUint32(b, n)
	}
	return b
}

// The GPS position in the test EXIF data: 48°51'29.58" N, 2°17'40.21" E.
var (
	testLatitude  = [6]uint32{48, 1, 51, 1, 2958, 100}
	testLongitude = [6]uint32{2, 1, 17, 1, 4021, 100}
)

// exifTIFF builds the TIFF structure of an EXIF segment: IFD0 with the
// orientation tag and a pointer to a GPS IFD that holds a latitude and a
// longitude.
func exifTIFF(bo byteOrder, orientation uint16) []byte {
	entry := func(b []byte, tag, typ uint16, count uint32, value []byte) []byte {
		b = bo.AppendUint16(b, tag)
		b = bo.AppendUint16(b, typ)
		b = bo.AppendUint32(b, count)
		v := make([]byte, 4)
		copy(v, value)
		return append(b, v...)
	}
	u32 := func(v uint32) []byte { return bo.AppendUint32(nil, v) }
	const (
		ifd0   = 8
		gpsIFD = ifd0 + 2 + 2*12 + 4 // 38
		latOff = gpsIFD + 2 + 4*12 + 4
		lonOff = latOff + 24
	)
	var b []byte
	if bo.String() == binary.BigEndian.String() {
		b = append(b, "MM"...)
	} else {
		b = append(b, "II"...)
	}
	b = bo.AppendUint16(b, 42)
	b = bo.AppendUint32(b, ifd0)
	b = bo.AppendUint16(b, 2)
	b = entry(b, 0x0112, 3, 1, bo.AppendUint16(nil, orientation)) // Orientation, SHORT
	b = entry(b, 0x8825, 4, 1, u32(gpsIFD))                       // GPSInfo, LONG
	b = bo.AppendUint32(b, 0)
	b = bo.AppendUint16(b, 4)
	b = entry(b, 1, 2, 2, []byte("N\x00")) // GPSLatitudeRef
	b = entry(b, 2, 5, 3, u32(latOff))     // GPSLatitude, RATIONAL×3
	b = entry(b, 3, 2, 2, []byte("E\x00")) // GPSLongitudeRef
	b = entry(b, 4, 5, 3, u32(lonOff))     // GPSLongitude
	b = bo.AppendUint32(b, 0)
	b = append(b, gpsRationals(bo, testLatitude)...)
	b = append(b, gpsRationals(bo, testLongitude)...)
	return b
}

// jpegSegment encodes one marker segment.
func jpegSegment(marker byte, payload []byte) []byte {
	b := []byte{0xFF, marker}
	b = binary.BigEndian.AppendUint16(b, uint16(len(payload)+2))
	return append(b, payload...)
}

// withMetadata splices, right after SOI, what a phone camera and an editor
// leave in a JPEG: an EXIF APP1 (orientation and GPS), an XMP APP1, an ICC
// APP2 and a comment.
func withMetadata(jpg []byte, bo byteOrder, orientation uint16) []byte {
	var meta []byte
	meta = append(meta, jpegSegment(0xE1, append([]byte("Exif\x00\x00"), exifTIFF(bo, orientation)...))...)
	meta = append(meta, jpegSegment(0xE1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>secret-xmp</x:xmpmeta>"))...)
	meta = append(meta, jpegSegment(0xE2, []byte("ICC_PROFILE\x00\x01\x01fake-icc-profile"))...)
	meta = append(meta, jpegSegment(0xFE, []byte("secret-comment"))...)
	out := append([]byte{}, jpg[:2]...)
	out = append(out, meta...)
	return append(out, jpg[2:]...)
}

// jpegMarkers lists the markers of a JPEG's header segments, up to SOS.
func jpegMarkers(t *testing.T, b []byte) []byte {
	t.Helper()
	if len(b) < 2 || b[0] != 0xFF || b[1] != 0xD8 {
		t.Fatalf("not a JPEG: % x", b[:min(len(b), 4)])
	}
	var markers []byte
	for i := 2; i+4 <= len(b); {
		if b[i] != 0xFF {
			t.Fatalf("bad JPEG segment at %d", i)
		}
		m := b[i+1]
		markers = append(markers, m)
		if m == 0xDA {
			return markers
		}
		i += 2 + int(binary.BigEndian.Uint16(b[i+2:]))
	}
	t.Fatal("JPEG has no SOS")
	return nil
}

// pngChunkTypes lists the chunk types of a PNG.
func pngChunkTypes(t *testing.T, b []byte) []string {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
		t.Fatal("not a PNG")
	}
	var types []string
	for i := 8; i+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[i:]))
		types = append(types, string(b[i+4:i+8]))
		i += 12 + n
	}
	return types
}

// insertPNGChunks puts chunks right after IHDR.
func insertPNGChunks(p []byte, chunks ...[]byte) []byte {
	const afterIHDR = 8 + 12 + 13
	out := append([]byte{}, p[:afterIHDR]...)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return append(out, p[afterIHDR:]...)
}

// animatedGIF has two w×h frames, the first first and the second second.
func animatedGIF(t testing.TB, w, h int, first, second color.Color) []byte {
	t.Helper()
	frame := func(c color.Color) *image.Paletted {
		p := image.NewPaletted(image.Rect(0, 0, w, h), color.Palette{first, second, color.Transparent})
		idx := uint8(p.Palette.Index(c))
		for i := range p.Pix {
			p.Pix[i] = idx
		}
		return p
	}
	var buf bytes.Buffer
	g := &gif.GIF{Image: []*image.Paletted{frame(first), frame(second)}, Delay: []int{10, 10}}
	if err := gif.EncodeAll(&buf, g); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// near reports whether c is within tol of want in every channel; JPEG is
// lossy, so colours come back close, not equal.
func near(c color.Color, want color.RGBA, tol int) bool {
	r, g, b, a := c.RGBA()
	d := func(x uint32, y uint8) bool { return abs(int(x>>8)-int(y)) <= tol }
	return d(r, want.R) && d(g, want.G) && d(b, want.B) && d(a, want.A)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// decodeOutput decodes what Process produced, checking that its bytes are
// what its ContentType says.
func decodeOutput(t testing.TB, img Image) image.Image {
	t.Helper()
	m, name, err := image.Decode(bytes.NewReader(img.Data))
	if err != nil {
		t.Fatalf("output does not decode: %v", err)
	}
	if want := map[string]string{ContentTypeJPEG: "jpeg", ContentTypePNG: "png"}[img.ContentType]; name != want {
		t.Fatalf("output is %s, ContentType says %q", name, img.ContentType)
	}
	if b := m.Bounds(); b.Dx() != img.Width || b.Dy() != img.Height {
		t.Fatalf("output is %v, Image says %d×%d", b, img.Width, img.Height)
	}
	return m
}

// progressiveJPEG is a valid side×side grey progressive JPEG made of a DC
// scan and acScans AC scans, each a few bytes long: every block is empty,
// and one end-of-band run code covers up to 32,767 blocks.
func progressiveJPEG(side, acScans int) []byte {
	b := []byte{0xFF, 0xD8}
	b = append(b, jpegSegment(0xDB, append([]byte{0}, bytes.Repeat([]byte{1}, 64)...))...)
	b = append(b, jpegSegment(0xC2, []byte{8, byte(side >> 8), byte(side), byte(side >> 8), byte(side), 1, 1, 0x11, 0})...)
	counts := make([]byte, 16)
	counts[0] = 1                                                                      // one code, "0"
	b = append(b, jpegSegment(0xC4, append(append([]byte{0x00}, counts...), 0x00))...) // DC: difference 0
	b = append(b, jpegSegment(0xC4, append(append([]byte{0x10}, counts...), 0xE0))...) // AC: EOB run, 14 bits
	blocks := (side / 8) * (side / 8)
	b = append(b, jpegSegment(0xDA, []byte{1, 1, 0x00, 0, 0, 0})...)
	var w bitWriter
	for range blocks {
		w.put(0, 1)
	}
	b = append(b, w.flush()...)
	for range acScans {
		b = append(b, jpegSegment(0xDA, []byte{1, 1, 0x00, 1, 63, 0})...)
		var w bitWriter
		for left := blocks; left > 0; {
			run := min(left, 32767)
			w.put(0, 1)
			w.put(uint32(run)&0x3FFF, 14)
			left -= run
		}
		b = append(b, w.flush()...)
	}
	return append(b, 0xFF, 0xD9)
}

// bitWriter writes JPEG entropy-coded bits, stuffing a 0x00 after each 0xFF.
type bitWriter struct {
	out []byte
	acc byte
	n   uint
}

func (w *bitWriter) put(v uint32, bits uint) {
	for i := int(bits) - 1; i >= 0; i-- {
		w.acc = w.acc<<1 | byte(v>>uint(i))&1
		if w.n++; w.n == 8 {
			w.out = append(w.out, w.acc)
			if w.acc == 0xFF {
				w.out = append(w.out, 0)
			}
			w.acc, w.n = 0, 0
		}
	}
}

func (w *bitWriter) flush() []byte {
	for w.n != 0 {
		w.put(1, 1)
	}
	return w.out
}

// sourceOf reads data as InspectAt reads an upload.
func sourceOf(data []byte) *source { return newSource(bytes.NewReader(data), int64(len(data))) }
