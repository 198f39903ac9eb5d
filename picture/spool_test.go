package picture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"testing"
)

// spooled lists the files in dir.
func spooled(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestSpool: an upload up to the limit is written to a file of its size in
// the directory, and Close removes it; one byte more is ErrTooLarge, and a
// body that breaks off is its error, each leaving no file behind.
func TestSpool(t *testing.T) {
	const limit = 100 << 10
	data := bytes.Repeat([]byte("0123456789abcdef"), limit/16)
	tests := []struct {
		name    string
		r       io.Reader
		wantErr error
	}{
		{"exactly the limit", bytes.NewReader(data), nil},
		{"empty", bytes.NewReader(nil), nil},
		{"one byte more", io.MultiReader(bytes.NewReader(data), bytes.NewReader([]byte{1})), ErrTooLarge},
		{"the body breaks off", io.MultiReader(bytes.NewReader(data[:limit/2]), errReader{io.ErrUnexpectedEOF}), io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			f, err := Spool(dir, tc.r, Limits{MaxBytes: limit})
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("error %v, want %v", err, tc.wantErr)
				}
				if e := spooled(t, dir); len(e) != 0 {
					t.Fatalf("a failed spool left %d files", len(e))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			e := spooled(t, dir)
			if len(e) != 1 {
				t.Fatalf("%d files in the spool, want 1", len(e))
			}
			if info, err := e[0].Info(); err != nil || info.Size() != f.Size() {
				t.Fatalf("the spooled file: %v, %v; want %d bytes", info, err, f.Size())
			}
			want := tc.r.(*bytes.Reader)
			got := make([]byte, f.Size())
			if _, err := f.ReadAt(got, 0); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if int64(len(got)) != want.Size() || (len(got) > 0 && !bytes.Equal(got, data)) {
				t.Fatalf("read back %d bytes, not what was spooled", len(got))
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Errorf("a second Close: %v", err)
			}
			if e := spooled(t, dir); len(e) != 0 {
				t.Fatalf("Close left %d files", len(e))
			}
		})
	}
}

// TestInspectAtReadsPastItsWindow: a JPEG whose EXIF orientation and frame
// header come after more metadata than the parsing window holds, inspected
// and processed from a spooled file, comes out as from memory: the scans
// counted, the cost estimated from the frame, the orientation applied.
func TestInspectAtReadsPastItsWindow(t *testing.T) {
	jpg := encodeJPEG(t, halves(40, 20, red, blue))
	var padding []byte
	for range 3 { // three APP segments of 60,000 bytes: past two windows
		padding = append(padding, jpegSegment(0xE3, bytes.Repeat([]byte{'x'}, 60000))...)
	}
	data := append(append(append([]byte{}, jpg[:2]...), padding...), withMetadata(jpg, binary.BigEndian, 6)[2:]...)
	if n := int64(len(padding)); n < 2*windowSize {
		t.Fatalf("test data: %d bytes of padding, not past two windows", n)
	}
	if got := jpegOrientation(sourceOf(data)); got != 6 {
		t.Fatalf("orientation %d, want 6", got)
	}
	if got := jpegScans(sourceOf(data)); got != 1 {
		t.Fatalf("%d scans, want 1", got)
	}
	if fr, ok := jpegFrameOf(sourceOf(data)); !ok || len(fr.comps) != 3 {
		t.Fatalf("frame %+v (found %v), want three components", fr, ok)
	}

	f, err := Spool(t.TempDir(), bytes.NewReader(data), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fromFile, err := InspectAt(f, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	fromMemory, err := Inspect(data, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if fromFile.Memory() != fromMemory.Memory() || fromFile.DecodedBytes() != fromMemory.DecodedBytes() {
		t.Errorf("from the file: memory %d, decoded %d; from memory %d, %d",
			fromFile.Memory(), fromFile.DecodedBytes(), fromMemory.Memory(), fromMemory.DecodedBytes())
	}
	img, err := fromFile.Process()
	if err != nil {
		t.Fatal(err)
	}
	if img.Width != 20 || img.Height != 40 {
		t.Errorf("processed from the file: %d×%d, want 20×40 (turned upright)", img.Width, img.Height)
	}
}

// TestProcessReadsTheFile: Process decodes what the file holds when it
// runs, not a copy taken by Inspect: the bytes wait on disk, not in memory.
func TestProcessReadsTheFile(t *testing.T) {
	a, b := encodeJPEG(t, halves(16, 16, red, red)), encodeJPEG(t, halves(16, 16, blue, blue))
	// Of one length, so that either fits the size Inspect saw (a decoder
	// ignores what follows the end of the image).
	n := max(len(a), len(b))
	a, b = append(a, make([]byte, n-len(a))...), append(b, make([]byte, n-len(b))...)
	f, err := Spool(t.TempDir(), bytes.NewReader(a), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u, err := InspectAt(f, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	img, err := u.Process()
	if err != nil {
		t.Fatal(err)
	}
	if c := decodeOutput(t, img).At(8, 8); !near(c, blue, 24) {
		t.Errorf("decoded %v, want blue: the file's bytes at decode time", c)
	}
}
