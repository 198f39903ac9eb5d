package picture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"idp/fake"
)

func TestProcessStripsMetadataAndAppliesOrientation(t *testing.T) {
	// 40×20, red on the left, blue on the right. Where the red half ends up
	// tells which transformation was applied.
	src := encodeJPEG(t, halves(40, 20, red, blue))
	tests := []struct {
		name          string
		bo            byteOrder
		orientation   uint16
		w, h          int
		redAt, blueAt image.Point
	}{
		{"upright", binary.BigEndian, 1, 40, 20, image.Pt(5, 10), image.Pt(35, 10)},
		{"upside down", binary.LittleEndian, 3, 40, 20, image.Pt(35, 10), image.Pt(5, 10)},
		// 6: turn clockwise; the left edge becomes the top.
		{"portrait 6", binary.BigEndian, 6, 20, 40, image.Pt(10, 5), image.Pt(10, 35)},
		{"portrait 6 little-endian", binary.LittleEndian, 6, 20, 40, image.Pt(10, 5), image.Pt(10, 35)},
		// 8: turn anticlockwise; the left edge becomes the bottom.
		{"portrait 8", binary.BigEndian, 8, 20, 40, image.Pt(10, 35), image.Pt(10, 5)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := withMetadata(src, tc.bo, tc.orientation)
			if got := jpegOrientation(sourceOf(in)); got != int(tc.orientation) {
				t.Fatalf("test data: orientation reads as %d, want %d", got, tc.orientation)
			}
			lat := gpsRationals(tc.bo, testLatitude)
			if !bytes.Contains(in, lat) {
				t.Fatal("test data carries no GPS latitude")
			}

			img, err := Process(bytes.NewReader(in), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if img.ContentType != ContentTypeJPEG {
				t.Fatalf("content type %q, want %q", img.ContentType, ContentTypeJPEG)
			}
			for _, secret := range [][]byte{
				[]byte("Exif"), lat, gpsRationals(tc.bo, testLongitude),
				[]byte("xmpmeta"), []byte("ICC_PROFILE"), []byte("secret-comment"),
			} {
				if bytes.Contains(img.Data, secret) {
					t.Errorf("output still contains %q", secret)
				}
			}
			for _, m := range jpegMarkers(t, img.Data) {
				if m >= 0xE0 && m <= 0xEF || m == 0xFE {
					t.Errorf("output has an APP%d/COM segment (marker %#x)", m-0xE0, m)
				}
			}
			if img.Width != tc.w || img.Height != tc.h {
				t.Fatalf("size %d×%d, want %d×%d", img.Width, img.Height, tc.w, tc.h)
			}
			m := decodeOutput(t, img)
			if c := m.At(tc.redAt.X, tc.redAt.Y); !near(c, red, 40) {
				t.Errorf("at %v: %v, want red", tc.redAt, c)
			}
			if c := m.At(tc.blueAt.X, tc.blueAt.Y); !near(c, blue, 40) {
				t.Errorf("at %v: %v, want blue", tc.blueAt, c)
			}
		})
	}
}

func TestOrientAllEight(t *testing.T) {
	// A 3×2 image whose pixels are numbered 1–6 in the red channel:
	//   1 2 3
	//   4 5 6
	src := image.NewRGBA(image.Rect(0, 0, 3, 2))
	for i := range 6 {
		src.SetRGBA(i%3, i/3, color.RGBA{R: uint8(i + 1), A: 255})
	}
	// What each orientation must display, worked out by hand from the EXIF
	// specification's description of where row 0 and column 0 belong.
	want := map[int][][]uint8{
		1: {{1, 2, 3}, {4, 5, 6}},
		2: {{3, 2, 1}, {6, 5, 4}},
		3: {{6, 5, 4}, {3, 2, 1}},
		4: {{4, 5, 6}, {1, 2, 3}},
		5: {{1, 4}, {2, 5}, {3, 6}},
		6: {{4, 1}, {5, 2}, {6, 3}},
		7: {{6, 3}, {5, 2}, {4, 1}},
		8: {{3, 6}, {2, 5}, {1, 4}},
	}
	for o, rows := range want {
		got := orient(src, o)
		if got.Rect.Dx() != len(rows[0]) || got.Rect.Dy() != len(rows) {
			t.Errorf("orientation %d: size %v, want %d×%d", o, got.Rect.Size(), len(rows[0]), len(rows))
			continue
		}
		for y, row := range rows {
			for x, v := range row {
				if r := got.RGBAAt(x, y).R; r != v {
					t.Errorf("orientation %d: pixel (%d,%d) = %d, want %d", o, x, y, r, v)
				}
			}
		}
	}
}

func TestJPEGOrientationMalformed(t *testing.T) {
	jpg := encodeJPEG(t, halves(8, 8, red, blue))
	tiff := exifTIFF(binary.BigEndian, 6)
	for name, data := range map[string][]byte{
		"no exif":            jpg,
		"truncated tiff":     append(append([]byte{0xFF, 0xD8}, jpegSegment(0xE1, append([]byte("Exif\x00\x00"), tiff[:12]...))...), jpg[2:]...),
		"bad byte order":     append(append([]byte{0xFF, 0xD8}, jpegSegment(0xE1, append([]byte("Exif\x00\x00XX"), tiff[2:]...))...), jpg[2:]...),
		"length past end":    {0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 'E', 'x'},
		"offset past end":    append(append([]byte{0xFF, 0xD8}, jpegSegment(0xE1, []byte("Exif\x00\x00MM\x00\x2a\xff\xff\xff\xf0"))...), jpg[2:]...),
		"empty":              nil,
		"value out of range": append(append([]byte{0xFF, 0xD8}, jpegSegment(0xE1, append([]byte("Exif\x00\x00"), exifTIFF(binary.BigEndian, 9)...))...), jpg[2:]...),
	} {
		if got := jpegOrientation(sourceOf(data)); got != 1 {
			t.Errorf("%s: orientation %d, want 1", name, got)
		}
	}
}

func TestProcessPNGWithAlphaStaysPNG(t *testing.T) {
	m := halves(64, 64, color.Transparent, green)
	in := insertPNGChunks(encodePNG(t, m),
		fake.PNGChunk("tEXt", []byte("Comment\x00secret-text")),
		fake.PNGChunk("eXIf", exifTIFF(binary.BigEndian, 1)),
	)
	img, err := Process(bytes.NewReader(in), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if img.ContentType != ContentTypePNG {
		t.Fatalf("content type %q, want %q", img.ContentType, ContentTypePNG)
	}
	for _, typ := range pngChunkTypes(t, img.Data) {
		switch typ {
		case "IHDR", "PLTE", "tRNS", "IDAT", "IEND":
		default:
			t.Errorf("output has a %s chunk", typ)
		}
	}
	if bytes.Contains(img.Data, []byte("secret-text")) {
		t.Error("output still contains the text chunk")
	}
	out := decodeOutput(t, img)
	if _, _, _, a := out.At(5, 5).RGBA(); a != 0 {
		t.Errorf("transparent pixel has alpha %d", a)
	}
	if c := out.At(50, 5); !near(c, green, 0) {
		t.Errorf("opaque pixel %v, want green", c)
	}
}

func TestProcessOpaquePNGBecomesJPEG(t *testing.T) {
	img, err := Process(bytes.NewReader(encodePNG(t, halves(30, 30, red, blue))), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if img.ContentType != ContentTypeJPEG {
		t.Fatalf("content type %q, want %q", img.ContentType, ContentTypeJPEG)
	}
	decodeOutput(t, img)
}

func TestProcessGIFKeepsFirstFrame(t *testing.T) {
	img, err := Process(bytes.NewReader(animatedGIF(t, 30, 20, red, blue)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if img.ContentType != ContentTypeJPEG || img.Width != 30 || img.Height != 20 {
		t.Fatalf("got %s %d×%d, want image/jpeg 30×20", img.ContentType, img.Width, img.Height)
	}
	if c := decodeOutput(t, img).At(15, 10); !near(c, red, 40) {
		t.Errorf("pixel %v, want the first frame's red", c)
	}
}

func TestProcessGIFWithTransparencyBecomesPNG(t *testing.T) {
	img, err := Process(bytes.NewReader(animatedGIF(t, 10, 10, color.Transparent, blue)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if img.ContentType != ContentTypePNG {
		t.Fatalf("content type %q, want %q", img.ContentType, ContentTypePNG)
	}
	decodeOutput(t, img)
}

func TestProcessWebP(t *testing.T) {
	tests := []struct {
		file        string
		contentType string
		w, h        int
	}{
		{"blue-purple-pink.lossy.webp", ContentTypeJPEG, 150, 100},
		{"gopher-doc.with-alpha.lossless.webp", ContentTypePNG, 75, 100},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			img, err := Process(bytes.NewReader(readTestdata(t, tc.file)), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if img.ContentType != tc.contentType || img.Width != tc.w || img.Height != tc.h {
				t.Fatalf("got %s %d×%d, want %s %d×%d", img.ContentType, img.Width, img.Height, tc.contentType, tc.w, tc.h)
			}
			decodeOutput(t, img)
		})
	}
}

func TestProcessRefusesNonImages(t *testing.T) {
	jpg := encodeJPEG(t, halves(64, 64, red, blue))
	for name, data := range map[string][]byte{
		"text file named avatar.png": []byte("this is not a picture, whatever its name says\n"),
		"empty":                      nil,
		"html":                       []byte("<!doctype html><script>alert(1)</script>"),
		"PNG signature then garbage": append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0x42}, 100)...),
		"truncated JPEG":             jpg[:len(jpg)/2],
		// A header that lies: 4096×4096 claimed, a few rows delivered.
		"PNG with too little data": fake.PNGBomb(4096, 4096),
		"RIFF but not WebP":        []byte("RIFF\x10\x00\x00\x00WAVEfmt "),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Process(bytes.NewReader(data), Limits{})
			if !errors.Is(err, ErrNotImage) {
				t.Fatalf("error %v, want ErrNotImage", err)
			}
		})
	}
}

func TestProcessTooLargeStopsReading(t *testing.T) {
	const limit = DefaultMaxBytes
	// 6 MiB that starts like a JPEG, so only the size can refuse it.
	body := io.MultiReader(bytes.NewReader([]byte{0xFF, 0xD8, 0xFF}), bytes.NewReader(make([]byte, 6<<20)))
	cr := &countingReader{r: body}
	_, err := Process(cr, Limits{})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("error %v, want ErrTooLarge", err)
	}
	if cr.n > limit+1 {
		t.Fatalf("read %d bytes, more than MaxBytes+1 = %d", cr.n, limit+1)
	}
}

func TestProcessSizeLimitBoundary(t *testing.T) {
	data := encodePNG(t, halves(16, 16, red, blue))
	n := int64(len(data))
	if _, err := Process(bytes.NewReader(data), Limits{MaxBytes: n}); err != nil {
		t.Fatalf("exactly MaxBytes: %v", err)
	}
	if _, err := Process(bytes.NewReader(data), Limits{MaxBytes: n - 1}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("MaxBytes+1: error %v, want ErrTooLarge", err)
	}
}

func TestProcessReadErrorPassesThrough(t *testing.T) {
	boom := errors.New("connection reset")
	_, err := Process(io.MultiReader(strings.NewReader("\x89PNG"), errReader{boom}), Limits{})
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want the reader's", err)
	}
	for _, sentinel := range []error{ErrTooLarge, ErrNotImage, ErrDimensions} {
		if errors.Is(err, sentinel) {
			t.Errorf("a read error is reported as %v", sentinel)
		}
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestProcessDimensions(t *testing.T) {
	gray := func(w, h int) []byte { return encodePNG(t, image.NewGray(image.Rect(0, 0, w, h))) }
	jpgBomb := encodeJPEG(t, halves(16, 16, red, blue))
	patchJPEGSize(t, jpgBomb, 60000, 60000)
	tests := []struct {
		name string
		data []byte
		lim  Limits
		ok   bool
	}{
		{"4096 wide", gray(4096, 1), Limits{}, true},
		{"4097 wide", gray(4097, 1), Limits{}, false},
		{"4097 high", gray(1, 4097), Limits{}, false},
		{"PNG bomb 50000×50000", fake.PNGBomb(50000, 50000), Limits{}, false},
		{"JPEG header claims 60000×60000", jpgBomb, Limits{}, false},
		{"over MaxPixels", gray(100, 100), Limits{MaxPixels: 100*100 - 1}, false},
		{"at MaxPixels", gray(100, 100), Limits{MaxPixels: 100 * 100}, true},
		{"over a custom MaxSide", gray(101, 10), Limits{MaxSide: 100}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Process(bytes.NewReader(tc.data), tc.lim)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && !errors.Is(err, ErrDimensions) {
				t.Fatalf("error %v, want ErrDimensions", err)
			}
		})
	}
}

// patchJPEGSize rewrites the size in a baseline JPEG's SOF0 header.
func patchJPEGSize(t *testing.T, b []byte, w, h uint16) {
	t.Helper()
	i := bytes.Index(b, []byte{0xFF, 0xC0})
	if i < 0 {
		t.Fatal("no SOF0")
	}
	binary.BigEndian.PutUint16(b[i+5:], h)
	binary.BigEndian.PutUint16(b[i+7:], w)
}

// TestProcessBombIsRefusedFromHeader shows that the bomb is judged by its
// header alone: decoding 50,000×50,000 grey pixels would allocate 2.5 GB,
// while refusing it allocates little more than the file. The same file under
// limits that admit its size does get decoded, and the measure notices.
func TestProcessBombIsRefusedFromHeader(t *testing.T) {
	bomb := fake.PNGBomb(50000, 50000)
	allocated := func(lim Limits) (uint64, error) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := Process(bytes.NewReader(bomb), lim)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	n, err := allocated(Limits{})
	if !errors.Is(err, ErrDimensions) {
		t.Fatalf("error %v, want ErrDimensions", err)
	}
	if n > 1<<20 {
		t.Fatalf("refusing a %d-byte bomb allocated %d bytes: it was decoded", len(bomb), n)
	}
	// The control: a 4000×4000 bomb with limits that let it through is
	// decoded (and fails for lack of data), which allocates 16 MB.
	small := fake.PNGBomb(4000, 4000)
	bomb = small
	n, err = allocated(Limits{MaxSide: 4000})
	if !errors.Is(err, ErrNotImage) {
		t.Fatalf("control: error %v, want ErrNotImage", err)
	}
	if n < 4000*4000 {
		t.Fatalf("control: decoding allocated only %d bytes; the measure is broken", n)
	}
}

func BenchmarkProcessBomb(b *testing.B) {
	bomb := fake.PNGBomb(50000, 50000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Process(bytes.NewReader(bomb), Limits{}); !errors.Is(err, ErrDimensions) {
			b.Fatal(err)
		}
	}
}

func TestProcessScalesDown(t *testing.T) {
	m := image.NewRGBA(image.Rect(0, 0, 3000, 2000))
	for y := range 2000 {
		for x := range 3000 {
			m.SetRGBA(x, y, color.RGBA{R: uint8(x), G: uint8(y), B: 128, A: 255})
		}
	}
	img, err := Process(bytes.NewReader(encodePNG(t, m)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != 1024 || img.Height != 683 {
		t.Fatalf("size %d×%d, want 1024×683", img.Width, img.Height)
	}
	decodeOutput(t, img)

	img, err = Process(bytes.NewReader(encodePNG(t, m)), Limits{OutputMaxSide: 100})
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != 100 || img.Height != 67 {
		t.Fatalf("OutputMaxSide 100: size %d×%d, want 100×67", img.Width, img.Height)
	}
}

func TestProcessScalesPortraitByItsLongSide(t *testing.T) {
	// 1500×2000 with orientation 6: stored landscape, shown portrait.
	in := withMetadata(encodeJPEG(t, halves(2000, 1500, red, blue)), binary.BigEndian, 6)
	img, err := Process(bytes.NewReader(in), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != 768 || img.Height != 1024 {
		t.Fatalf("size %d×%d, want 768×1024", img.Width, img.Height)
	}
}

// BenchmarkProcessLargePhoto measures the worst ordinary case: a photo at
// the default size limit, scaled to 1024 pixels.
func BenchmarkProcessLargePhoto(b *testing.B) {
	m := image.NewRGBA(image.Rect(0, 0, DefaultMaxSide, DefaultMaxSide*3/4))
	for y := range m.Rect.Dy() {
		for x := range m.Rect.Dx() {
			m.SetRGBA(x, y, color.RGBA{R: uint8(x), G: uint8(y), B: uint8(x ^ y), A: 255})
		}
	}
	data := encodeJPEG(b, m)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Process(bytes.NewReader(data), Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestProcessProgressiveJPEG(t *testing.T) {
	img, err := Process(bytes.NewReader(progressiveJPEG(64, 5)), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != 64 || img.Height != 64 {
		t.Fatalf("size %d×%d, want 64×64", img.Width, img.Height)
	}
	decodeOutput(t, img)
}

// TestProcessRefusesScanBomb: 1,000 empty progressive scans of a 4096×4096
// image fit in 70 KB and keep the decoder busy for seconds (5 MiB of them,
// for many minutes). They are counted and refused before decoding.
func TestProcessRefusesScanBomb(t *testing.T) {
	bomb := progressiveJPEG(4096, 1000)
	if n := jpegScans(sourceOf(bomb)); n != 1001 {
		t.Fatalf("jpegScans = %d, want 1001", n)
	}
	start := time.Now()
	_, err := Process(bytes.NewReader(bomb), Limits{})
	if !errors.Is(err, ErrNotImage) {
		t.Fatalf("error %v, want ErrNotImage", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("refusing took %v: the scans were decoded", d)
	}
	if n := jpegScans(sourceOf(withMetadata(encodeJPEG(t, halves(16, 16, red, blue)), binary.BigEndian, 1))); n != 1 {
		t.Errorf("baseline JPEG with metadata: jpegScans = %d, want 1", n)
	}
}

// TestRead: whatever the size hint says, Read returns exactly what r holds
// up to the limit and refuses more; with a hint that covers the upload it
// reads into one buffer (the reader, the limit and the buffer are the three
// allocations), where growing one would allocate many.
func TestRead(t *testing.T) {
	const limit = 1 << 20
	lim := Limits{MaxBytes: limit}
	tests := []struct {
		name      string
		n         int   // bytes r holds
		size      int64 // the hint
		wantErr   error
		maxAllocs float64
	}{
		{"hint exact", limit, limit, nil, 3},
		{"hint above (a whole multipart body)", limit / 2, limit * 3, nil, 3},
		{"hint unknown", limit / 2, -1, nil, 100},
		{"hint below what r holds", limit / 2, 10, nil, 100},
		{"over the limit, hint exact", limit + 1, limit + 1, ErrTooLarge, 3},
		{"over the limit, hint unknown", limit * 2, -1, ErrTooLarge, 100},
		{"empty", 0, 0, nil, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := bytes.Repeat([]byte{7}, tc.n)
			got, err := Read(bytes.NewReader(data), lim, tc.size)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("Read gave %d bytes, err %v; want the %d bytes", len(got), err, len(data))
			}
			allocs := testing.AllocsPerRun(5, func() { Read(bytes.NewReader(data), lim, tc.size) })
			if allocs > tc.maxAllocs {
				t.Errorf("%v allocations, want at most %v", allocs, tc.maxAllocs)
			}
		})
	}
	// Without the hint, growing the buffer takes many allocations: the
	// bound above is what the hint buys.
	data := bytes.Repeat([]byte{7}, limit)
	if a := testing.AllocsPerRun(5, func() { Read(bytes.NewReader(data), lim, -1) }); a <= 3 {
		t.Errorf("an unhinted read took %v allocations: the hinted bound tests nothing", a)
	}
}
