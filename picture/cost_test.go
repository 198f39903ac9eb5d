package picture

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/gif"
	"runtime"
	"testing"
	"time"

	"idp/fake"
)

// pngOf builds a PNG of a w×h header with the given bit depth and colour
// type, the extra chunks after IHDR, and an IDAT that holds the first rows
// only (rows < 0: all of them, zero pixels).
func pngOf(t testing.TB, w, h uint32, depth, colorType byte, rows int, extra ...[]byte) []byte {
	t.Helper()
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, depth, colorType, 0, 0, 0)
	channels := map[byte]int{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colorType]
	rowBytes := 1 + (int(w)*channels*int(depth)+7)/8
	if rows < 0 || rows > int(h) {
		rows = int(h)
	}
	var z bytes.Buffer
	zw, err := zlib.NewWriterLevel(&z, zlib.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	row := make([]byte, rowBytes)
	for range rows {
		zw.Write(row)
	}
	zw.Close()
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, fake.PNGChunk("IHDR", ihdr)...)
	for _, c := range extra {
		b = append(b, c...)
	}
	b = append(b, fake.PNGChunk("IDAT", z.Bytes())...)
	return append(b, fake.PNGChunk("IEND", nil)...)
}

// allocated is what f allocates, in bytes.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestDeepPNGIsRefusedFromHeader is the 16-bit bomb: a valid PNG of about
// 140 KB whose 4096×4096 pixels are within MaxSide and MaxPixels but decode
// to 128 MiB (8 bytes a pixel) and cost more than a second of CPU. It is
// refused as ErrDimensions from its header, quickly and without allocating
// anywhere near its decoded size.
func TestDeepPNGIsRefusedFromHeader(t *testing.T) {
	bomb := pngOf(t, 4096, 4096, 16, 2, -1) // 16-bit RGB, every row
	if len(bomb) > 200<<10 {
		t.Fatalf("the bomb is %d bytes, want a small file", len(bomb))
	}
	var err error
	start := time.Now()
	n := allocated(func() { _, err = Process(bytes.NewReader(bomb), Limits{}) })
	took := time.Since(start)
	if !errors.Is(err, ErrDimensions) {
		t.Fatalf("error %v, want ErrDimensions", err)
	}
	if n > 2<<20 {
		t.Errorf("refusing a %d-byte file allocated %d bytes: it was decoded", len(bomb), n)
	}
	if took > 250*time.Millisecond {
		t.Errorf("refusing took %v: it was decoded", took)
	}
	u, err := Inspect(bomb, Limits{MaxDecodedBytes: 128 << 20})
	if err != nil {
		t.Fatalf("with 128 MiB allowed: %v", err)
	}
	if u.DecodedBytes() != 128<<20 || u.Memory() <= 128<<20 {
		t.Errorf("DecodedBytes %d, Memory %d: want 128 MiB decoded, and more than the default budget of 128 MiB in all", u.DecodedBytes(), u.Memory())
	}
	// The 8-bit pictures of the same size fit in the default budget of 128
	// MiB (budget.Default on 2 cores), decoder and scaler included.
	for _, data := range [][]byte{pngOf(t, 4096, 4096, 8, 6, 1), pngOf(t, 4096, 4096, 8, 2, 1), encodeJPEG(t, image.NewRGBA(image.Rect(0, 0, 4096, 4096)))} {
		u, err := Inspect(data, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if u.Memory() > 128<<20 {
			t.Errorf("a 4096² %d-byte picture is estimated at %d bytes, more than the default budget of 128 MiB", len(data), u.Memory())
		}
	}

	// The control: the header alone, with limits that admit it, is decoded
	// (and fails for want of rows) after allocating its 128 MiB.
	truncated := pngOf(t, 4096, 4096, 16, 2, 1)
	n = allocated(func() { _, err = Process(bytes.NewReader(truncated), Limits{MaxDecodedBytes: 128 << 20}) })
	if !errors.Is(err, ErrNotImage) {
		t.Fatalf("control: error %v, want ErrNotImage", err)
	}
	if n < 128<<20 {
		t.Fatalf("control: decoding allocated only %d bytes; the measure is broken", n)
	}
}

func TestDecodedBytes(t *testing.T) {
	trns := fake.PNGChunk("tRNS", []byte{0, 0})
	tests := []struct {
		name    string
		data    []byte
		decoded int64 // 0: refused with ErrDimensions
	}{
		{"8-bit RGBA 4096² passes", pngOf(t, 4096, 4096, 8, 6, 1), 4096 * 4096 * 4},
		{"8-bit RGB 4096² (decoded as RGBA)", pngOf(t, 4096, 4096, 8, 2, 1), 4096 * 4096 * 4},
		{"8-bit grey 4096²", pngOf(t, 4096, 4096, 8, 0, 1), 4096 * 4096},
		{"grey with tRNS decodes as NRGBA", pngOf(t, 1000, 1000, 8, 0, 1, trns), 1000 * 1000 * 4},
		{"16-bit grey 4096²", pngOf(t, 4096, 4096, 16, 0, 1), 4096 * 4096 * 2},
		{"16-bit grey with tRNS 4096² is NRGBA64", pngOf(t, 4096, 4096, 16, 0, 1, trns), 0},
		{"16-bit RGB 4096²", pngOf(t, 4096, 4096, 16, 2, 1), 0},
		{"16-bit RGBA 2896²", pngOf(t, 2896, 2896, 16, 6, 1), 2896 * 2896 * 8},
		{"16-bit RGBA 2897² is over 64 MiB", pngOf(t, 2897, 2897, 16, 6, 1), 0},
		{"paletted", pngOf(t, 300, 200, 8, 3, 1, fake.PNGChunk("PLTE", []byte{0, 0, 0})), 300 * 200},
		{"JPEG grey", encodeJPEG(t, image.NewGray(image.Rect(0, 0, 40, 30))), 40 * 30},
		{"JPEG YCbCr", encodeJPEG(t, halves(40, 30, red, blue)), 40 * 30 * 3},
		{"GIF", animatedGIF(t, 40, 30, red, blue), 40 * 30},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := Inspect(tc.data, Limits{})
			if tc.decoded == 0 {
				if !errors.Is(err, ErrDimensions) {
					t.Fatalf("error %v, want ErrDimensions", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.DecodedBytes() != tc.decoded {
				t.Errorf("DecodedBytes %d, want %d", u.DecodedBytes(), tc.decoded)
			}
			if u.Memory() < u.DecodedBytes() {
				t.Errorf("Memory %d is less than the decoded image, %d", u.Memory(), u.DecodedBytes())
			}
		})
	}
}

// TestMemoryCoversProcess checks the estimate against the allocator: what
// Process allocates in all (a bound above its peak) for real images of each
// format and layout stays within Memory plus the copy of the upload.
func TestMemoryCoversProcess(t *testing.T) {
	photo := image.NewRGBA(image.Rect(0, 0, 1500, 1000))
	for y := range 1000 {
		for x := range 1500 {
			photo.SetRGBA(x, y, color.RGBA{R: uint8(x), G: uint8(y), B: uint8(x ^ y), A: 255})
		}
	}
	transparent := image.NewNRGBA(image.Rect(0, 0, 1200, 900))
	var gifBuf bytes.Buffer
	pal := image.NewPaletted(image.Rect(0, 0, 1200, 900), color.Palette{color.Black, color.White})
	if err := gif.Encode(&gifBuf, pal, nil); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"baseline JPEG, scaled", encodeJPEG(t, photo)},
		{"baseline JPEG, EXIF orientation", withMetadata(encodeJPEG(t, photo), binary.BigEndian, 6)},
		{"progressive JPEG", progressiveJPEG(2048, 5)},
		{"RGBA PNG, scaled", encodePNG(t, photo)},
		{"transparent PNG", encodePNG(t, transparent)},
		{"PNG, box step only", encodePNG(t, photoLike(2048, 1536))},
		{"JPEG, box and area steps", encodeJPEG(t, photoLike(2500, 1700))},
		{"transparent PNG, box and area steps", encodePNG(t, checkerboard(2100, 1400, color.Transparent, color.White))},
		{"small PNG, not scaled", encodePNG(t, halves(300, 200, red, blue))},
		{"GIF", gifBuf.Bytes()},
		{"lossless WebP", readTestdata(t, "gopher-doc.1bpp.lossless.webp")},
		{"lossy WebP", readTestdata(t, "blue-purple-pink.lossy.webp")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := Inspect(tc.data, Limits{})
			if err != nil {
				t.Fatal(err)
			}
			n := allocated(func() { _, err = u.Process() })
			if err != nil {
				t.Fatal(err)
			}
			if int64(n) > u.Memory()+int64(len(tc.data)) {
				t.Errorf("Process allocated %d bytes, Memory estimated %d", n, u.Memory())
			}
		})
	}
}

// TestWebPHuffmanTreesAreCharged: a lossless WebP's Huffman groups are
// built before a pixel is read and the header does not tell them; a file of
// under a megabyte with a small image makes x/image build 2,600 groups of
// full-size trees. What Memory reserves covers what that decode allocates,
// while an ordinary lossless WebP is still accepted.
func TestWebPHuffmanTreesAreCharged(t *testing.T) {
	data := fake.WebPHuffmanBomb()
	u, err := Inspect(data, Limits{})
	if err != nil {
		t.Fatalf("the crafted WebP is refused from its header (%v): the test would prove nothing", err)
	}
	n := allocated(func() { _, err = u.Process() })
	if err == nil {
		t.Fatal("the crafted WebP, whose stream ends after its trees, decoded")
	}
	if n < 100<<20 {
		t.Fatalf("decoding allocated only %d bytes: the file no longer builds its trees", n)
	}
	if int64(n) > u.Memory()+int64(len(data)) {
		t.Errorf("decoding allocated %d bytes, Memory reserves %d", n, u.Memory())
	}
	// The bound refuses nothing by itself.
	if _, err := Inspect(readTestdata(t, "gopher-doc.with-alpha.lossless.webp"), Limits{MaxMemory: 8 << 20}); err != nil {
		t.Errorf("a small lossless WebP under an 8 MiB MaxMemory: %v", err)
	}
}

// TestMaxMemoryRefusesFromHeader: an upload whose processing would hold
// more than MaxMemory is refused from its header like one with too many
// pixels, so that no single picture runs past the memory budget (a
// progressive JPEG keeps every coefficient while it decodes, far more than
// its decoded image).
func TestMaxMemoryRefusesFromHeader(t *testing.T) {
	data := progressiveJPEG(4096, 5)
	u, err := Inspect(data, Limits{})
	if err != nil {
		t.Fatalf("a 4096² progressive JPEG within the default limits: %v", err)
	}
	if u.Memory() > u.lim.MaxMemory {
		t.Fatalf("Memory %d passed a MaxMemory of %d", u.Memory(), u.lim.MaxMemory)
	}
	for _, max := range []int64{u.Memory() - 1, u.DecodedBytes()} {
		if _, err := Inspect(data, Limits{MaxMemory: max}); !errors.Is(err, ErrDimensions) {
			t.Errorf("MaxMemory %d, Memory %d: error %v, want ErrDimensions", max, u.Memory(), err)
		}
	}
	if _, err := Inspect(data, Limits{MaxMemory: u.Memory()}); err != nil {
		t.Errorf("MaxMemory equal to Memory: %v", err)
	}
	if got := (Limits{}).withDefaults().MaxMemory; got != 2*DefaultMaxDecodedBytes+16<<20 {
		t.Errorf("default MaxMemory %d, want %d", got, 2*DefaultMaxDecodedBytes+16<<20)
	}
}
