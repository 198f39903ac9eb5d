// Package picture checks, cleans and stores users' profile pictures.
//
// Process turns an upload into a small, metadata-free JPEG or PNG (in two
// steps where the caller must reserve memory first: Inspect reads the header
// and says what decoding will cost, Upload.Process decodes); NewKey names
// each stored object afresh; a Store keeps it (Google Cloud Storage in
// production, a local directory by default) and hands out URLs that a plain
// GET can download.
package picture

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"sync"

	"golang.org/x/image/webp"
)

// The defaults of Limits, exported so that the HTTP layer can quote them in
// its error messages.
const (
	DefaultMaxBytes        = 5 << 20 // 5 MiB
	DefaultMaxSide         = 4096
	DefaultMaxDecodedBytes = 4 * DefaultMaxSide * DefaultMaxSide // 64 MiB: 8-bit RGBA at the default MaxSide
	DefaultOutputMaxSide   = 1024
)

// The content types Process produces. Only these two come out, whatever came
// in: a fresh encoding is what guarantees that no metadata survives.
const (
	ContentTypeJPEG = "image/jpeg"
	ContentTypePNG  = "image/png"
)

// maxJPEGScans caps the scans of a JPEG. A progressive scan costs the
// decoder a pass over every block of the image however few bytes encode it,
// so a 60 KB file of 1,000 scans takes seconds of CPU to decode, and 5 MB
// of them many minutes. Real files have 1 to about 15.
const maxJPEGScans = 100

// jpegQuality is a good compromise for photos: artefacts are hard to see at
// profile-picture sizes, and the file is a fraction of quality 100.
const jpegQuality = 85

// Errors that Process returns, each wrapped with details; test with errors.Is.
var (
	// ErrTooLarge: the upload has more than MaxBytes bytes (HTTP 413).
	ErrTooLarge = errors.New("picture: file too large")
	// ErrNotImage: not a JPEG, PNG, GIF or WebP, or one that does not decode
	// (HTTP 415).
	ErrNotImage = errors.New("picture: not a supported image")
	// ErrDimensions: a side, the pixel count or the decoded size in bytes
	// is over the limit, or a side is zero (HTTP 422).
	ErrDimensions = errors.New("picture: image dimensions out of range")
)

// Limits bound what Process accepts and produces. A zero field takes its
// default.
type Limits struct {
	// MaxBytes is the largest upload accepted (default 5 MiB).
	MaxBytes int64
	// MaxSide is the largest width or height accepted (default 4096).
	MaxSide int
	// MaxPixels caps width×height (default MaxSide²). Decoding allocates
	// memory in proportion to it, before a single pixel is read.
	MaxPixels int64
	// MaxDecodedBytes caps the decoded image in bytes: width × height × the
	// bytes per pixel of the decoder's colour model, read from the header
	// (default 4 bytes for each of MaxPixels: DefaultMaxDecodedBytes, 64
	// MiB, at the default MaxSide, so that any 8-bit RGBA image within the
	// pixel limits passes). A 16-bit PNG takes 8 bytes a pixel, so a small
	// file within MaxPixels could still ask for twice that.
	MaxDecodedBytes int64
	// MaxMemory caps what processing one upload may hold at once
	// (Upload.Memory, estimated from the header; default twice
	// MaxDecodedBytes plus 16 MiB for the encoder and the small buffers,
	// 144 MiB at the default MaxSide). The decoded image
	// is not all: a progressive JPEG keeps every coefficient while it
	// decodes, so a 4096² four-component one within MaxDecodedBytes would
	// need some 400 MB. Past this cap an upload is refused like one with
	// too many pixels, rather than run past the memory budget.
	MaxMemory int64
	// OutputMaxSide is the longest side of the stored picture (default 1024);
	// larger images are scaled down.
	OutputMaxSide int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	// MaxBytes+1 must not overflow: it is what Process reads to tell "exactly
	// MaxBytes" from "more".
	l.MaxBytes = min(l.MaxBytes, math.MaxInt64-1)
	if l.MaxSide <= 0 {
		l.MaxSide = DefaultMaxSide
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = int64(l.MaxSide) * int64(l.MaxSide)
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = 4 * l.MaxPixels
	}
	if l.MaxMemory <= 0 {
		l.MaxMemory = 2*l.MaxDecodedBytes + 16<<20
	}
	if l.OutputMaxSide <= 0 {
		l.OutputMaxSide = DefaultOutputMaxSide
	}
	return l
}

// Image is a processed picture, ready to store.
type Image struct {
	Data        []byte
	ContentType string // ContentTypeJPEG or ContentTypePNG
	Width       int
	Height      int
}

// format is one accepted input format. The decoders are called directly
// rather than through image.Decode, so that only these four formats are ever
// tried, whatever other packages register.
type format struct {
	name   string
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

// sniff judges the format by its magic bytes: the name and the declared
// content type of an upload are the client's claims, the bytes are the fact.
func sniff(src *source) (format, bool) {
	data := src.slice(0, min(12, src.size))
	switch {
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return format{"jpeg", jpeg.DecodeConfig, jpeg.Decode}, true
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return format{"png", png.DecodeConfig, png.Decode}, true
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		// gif.Decode stops after the first frame, so an animation of many
		// large frames costs no more than one.
		return format{"gif", gif.DecodeConfig, gif.Decode}, true
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return format{"webp", webp.DecodeConfig, webp.Decode}, true
	}
	return format{}, false
}

// Process reads an uploaded picture from r and returns it cleaned: checked to
// be a JPEG, PNG, GIF or WebP within lim, turned upright by its EXIF
// orientation, scaled to at most lim.OutputMaxSide, and re-encoded (JPEG for
// opaque images, PNG for transparent ones; the first frame of an animation)
// so that no metadata of the original, such as GPS position, survives.
//
// It is Read, Inspect and Upload.Process in one: callers that bound the
// memory of concurrent decodes call those, and reserve Upload.Memory before
// Upload.Process. Errors wrap ErrTooLarge, ErrNotImage or ErrDimensions, or
// else the error of r.
func Process(r io.Reader, lim Limits) (Image, error) {
	data, err := Read(r, lim, -1)
	if err != nil {
		return Image{}, err
	}
	u, err := Inspect(data, lim)
	if err != nil {
		return Image{}, err
	}
	return u.Process()
}

// Read reads an upload of at most lim.MaxBytes bytes from r, without looking
// at what it holds: reading more is ErrTooLarge (and stops there), so a huge
// upload costs no more than the limit. size is at least what r holds (the
// request's Content-Length), or negative when unknown: with it the upload is
// read into one buffer of its size, where growing a buffer as io.ReadAll
// does would allocate several times the upload before it is done.
func Read(r io.Reader, lim Limits, size int64) ([]byte, error) {
	lim = lim.withDefaults()
	// One byte more than can be wanted, so that reading to the end never
	// grows the buffer and more than MaxBytes is seen.
	n := lim.MaxBytes + 1
	if size >= 0 && size < lim.MaxBytes {
		n = size + 1
	}
	if size < 0 {
		n = 512 // unknown: grown as needed
	}
	data, err := readAll(io.LimitReader(r, lim.MaxBytes+1), make([]byte, 0, n))
	if err != nil {
		return nil, fmt.Errorf("picture: read upload: %w", err)
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, lim.MaxBytes)
	}
	return data, nil
}

// readAll is io.ReadAll into b, which it grows only when full.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// Upload is an upload whose header Inspect has read and checked: its format,
// its size and what decoding it will cost are known, and no pixel has been
// decoded yet.
type Upload struct {
	src     *source
	f       format
	cfg     image.Config
	lim     Limits
	decoded int64 // bytes of the decoded image, as MaxDecodedBytes counts them
	memory  int64 // bytes Process holds at its peak, estimated
}

// Inspect is InspectAt for an upload held in memory.
func Inspect(data []byte, lim Limits) (*Upload, error) {
	return InspectAt(bytes.NewReader(data), lim)
}

// Source is an upload's bytes: a spooled File, or a *bytes.Reader.
type Source interface {
	io.ReaderAt
	Size() int64
}

// InspectAt judges an upload by its magic bytes and its header alone: the
// format must be one of the four, the sides, the pixel count and the
// decoded size in bytes within lim, a JPEG's scans few. It decodes no pixel
// and reads through a small window rather than holding the upload, so that
// a small file that claims a huge or deep image (a decompression bomb) is
// refused before it costs anything, and a large one costs no more memory
// than a small one. The Upload reads r again when processed: keep r open
// until then. Errors wrap ErrTooLarge, ErrNotImage or ErrDimensions, or are
// r's.
func InspectAt(r Source, lim Limits) (*Upload, error) {
	lim = lim.withDefaults()
	if r.Size() > lim.MaxBytes {
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, lim.MaxBytes)
	}
	src := newSource(r, r.Size())
	// The window is garbage once the header is read: an upload waiting for
	// its decode holds no buffer.
	defer src.drop()
	f, ok := sniff(src)
	if err := src.err; err != nil {
		return nil, fmt.Errorf("picture: read upload: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: not JPEG, PNG, GIF or WebP", ErrNotImage)
	}
	if f.name == "jpeg" {
		n := jpegScans(src)
		if err := src.err; err != nil {
			return nil, fmt.Errorf("picture: read upload: %w", err)
		}
		if n > maxJPEGScans {
			return nil, fmt.Errorf("%w: jpeg has %d scans, more than %d", ErrNotImage, n, maxJPEGScans)
		}
	}
	cfg, err := f.config(src.reader())
	if err != nil {
		return nil, fmt.Errorf("%w: %s header: %v", ErrNotImage, f.name, err)
	}
	if err := checkDimensions(cfg.Width, cfg.Height, lim); err != nil {
		return nil, err
	}
	u := &Upload{src: src, f: f, cfg: cfg, lim: lim}
	var trees int64
	u.decoded, u.memory, trees = cost(f.name, src, cfg, lim.OutputMaxSide)
	if err := src.err; err != nil {
		return nil, fmt.Errorf("picture: read upload: %w", err)
	}
	if u.decoded > lim.MaxDecodedBytes {
		return nil, fmt.Errorf("%w: %d×%d pixels decode to %d bytes, more than %d",
			ErrDimensions, cfg.Width, cfg.Height, u.decoded, lim.MaxDecodedBytes)
	}
	// The trees' bound is charged to the budget (Memory) but refuses
	// nothing: ordinary lossless WebPs hold far smaller trees, and one of
	// them over MaxMemory still runs, alone, within the budget.
	if u.memory-trees > lim.MaxMemory {
		return nil, fmt.Errorf("%w: %d×%d pixels take %d bytes to process, more than %d",
			ErrDimensions, cfg.Width, cfg.Height, u.memory-trees, lim.MaxMemory)
	}
	return u, nil
}

// Width and Height are the image's size as its header gives it.
func (u *Upload) Width() int  { return u.cfg.Width }
func (u *Upload) Height() int { return u.cfg.Height }

// DecodedBytes is the size of the decoded image as Limits.MaxDecodedBytes
// counts it: width × height × the bytes per pixel of its colour model.
func (u *Upload) DecodedBytes() int64 { return u.decoded }

// Memory is the most memory Process holds at once for this upload, in
// bytes, estimated from the header: the decoder's working memory and the
// decoded image, the scaler's intermediate image, the output and its
// encoding. Reserve it before calling Process. At the default limits it
// ranges from a few MB for a phone-sized picture to about 75 MB for a
// 4096×4096 RGBA PNG, of which the decoded image is 64 MiB. A lossless
// WebP (or one with alpha) adds a bound on its Huffman trees, up to about
// 230 MB, which the header cannot tell.
func (u *Upload) Memory() int64 { return u.memory }

// Process decodes the upload and returns it cleaned, as the package-level
// Process does. It takes about a second of CPU for the largest pictures
// within the default limits: callers bound how many run at once.
func (u *Upload) Process() (Image, error) {
	f, cfg := u.f, u.cfg
	defer u.src.drop()
	src, err := decode(f, bufio.NewReaderSize(u.src.reader(), 32<<10))
	if err != nil {
		return Image{}, err
	}
	canvas := image.Rect(0, 0, cfg.Width, cfg.Height)
	if b := src.Bounds(); b.Empty() || !b.In(canvas) || (f.name != "gif" && b != canvas) {
		// The header said one size and the pixel data another.
		return Image{}, fmt.Errorf("%w: %s decodes to %v, its header says %v", ErrNotImage, f.name, b, canvas)
	}
	out := scale(src, canvas, u.lim.OutputMaxSide)
	if f.name == "jpeg" {
		o := jpegOrientation(u.src)
		if err := u.src.err; err != nil {
			return Image{}, fmt.Errorf("picture: read upload: %w", err)
		}
		out = orient(out, o)
	}
	return encode(out)
}

func checkDimensions(w, h int, lim Limits) error {
	switch {
	case w < 1 || h < 1:
		return fmt.Errorf("%w: empty image (%d×%d)", ErrDimensions, w, h)
	case w > lim.MaxSide || h > lim.MaxSide:
		return fmt.Errorf("%w: %d×%d pixels, a side over %d", ErrDimensions, w, h, lim.MaxSide)
	case int64(w)*int64(h) > lim.MaxPixels:
		return fmt.Errorf("%w: %d×%d pixels, more than %d in all", ErrDimensions, w, h, lim.MaxPixels)
	}
	return nil
}

// decode decodes the whole image. A decoder that panics on hostile input
// must not take the server down, so a panic becomes ErrNotImage too.
func decode(f format, r io.Reader) (img image.Image, err error) {
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("%w: %s decoder panicked: %v", ErrNotImage, f.name, p)
		}
	}()
	img, err = f.decode(r)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			// The spool file failed, not the image.
			return nil, fmt.Errorf("picture: read upload: %w", err)
		}
		return nil, fmt.Errorf("%w: decode %s: %v", ErrNotImage, f.name, err)
	}
	return img, nil
}

// outputSize is the size scale gives a w×h image.
func outputSize(w, h, maxSide int) (int, int) {
	if long := max(w, h); long > maxSide {
		w = max(1, int(math.Round(float64(w)*float64(maxSide)/float64(long))))
		h = max(1, int(math.Round(float64(h)*float64(maxSide)/float64(long))))
	}
	return w, h
}

// encode writes img as a JPEG when it is opaque and as a PNG when any pixel
// is transparent (JPEG has no alpha: transparent areas would turn black).
// Go's encoders write no metadata at all.
func encode(img *image.RGBA) (Image, error) {
	var buf bytes.Buffer
	out := Image{Width: img.Rect.Dx(), Height: img.Rect.Dy()}
	if img.Opaque() {
		out.ContentType = ContentTypeJPEG
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: jpegQuality}); err != nil {
			return Image{}, fmt.Errorf("picture: encode jpeg: %w", err)
		}
	} else {
		out.ContentType = ContentTypePNG
		enc := png.Encoder{CompressionLevel: png.BestCompression}
		if err := enc.Encode(&buf, img); err != nil {
			return Image{}, fmt.Errorf("picture: encode png: %w", err)
		}
	}
	out.Data = buf.Bytes()
	return out, nil
}

// windowSize is the most of an upload that parsing its header holds: a
// JPEG segment (at most 65,535 bytes after its marker) with its marker.
const windowSize = 64<<10 + 2

// source is an upload read through a window of its bytes, so that walking
// a header or a JPEG's markers costs a few reads of the spooled file and
// never the file in memory. A read error is kept in err, and the parsers
// see the bytes end there; the caller checks err after them.
type source struct {
	r    io.ReaderAt
	size int64
	buf  []byte // bytes [off, off+len(buf)) of the upload
	off  int64
	err  error
}

func newSource(r io.ReaderAt, size int64) *source { return &source{r: r, size: size} }

// has reports whether bytes [i, i+n) exist, reading them into the window
// when it does not hold them; n is at most windowSize.
func (s *source) has(i, n int64) bool {
	if i < 0 || n < 0 || i+n > s.size {
		return false
	}
	if i >= s.off && i+n <= s.off+int64(len(s.buf)) {
		return true
	}
	if s.err != nil || n > windowSize {
		return false
	}
	if s.buf == nil {
		s.buf = make([]byte, windowSize)
	}
	m := min(windowSize, s.size-i)
	k, err := s.r.ReadAt(s.buf[:m], i)
	if int64(k) < m {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF // shorter than its size said
		}
		s.err, s.buf = err, s.buf[:0]
		return false
	}
	s.buf, s.off = s.buf[:m], i
	return true
}

// at is byte i; call has(i, 1) first.
func (s *source) at(i int64) byte { return s.buf[i-s.off] }

// slice is bytes [i, i+n), or nil when they do not exist. It is valid
// until the next call of has or slice.
func (s *source) slice(i, n int64) []byte {
	if !s.has(i, n) {
		return nil
	}
	return s.buf[i-s.off : i-s.off+n]
}

// reader reads the upload from its start.
func (s *source) reader() io.Reader { return io.NewSectionReader(s.r, 0, s.size) }

// drop lets the window go; the next has reads a new one.
func (s *source) drop() { s.buf, s.off = nil, 0 }

// File is an upload spooled to a temporary file as it was read: the bytes
// of a picture wait for their decode on disk, not in the heap. Close
// removes it.
type File struct {
	f     *os.File
	size  int64
	close sync.Once
	err   error
}

// Spool writes an upload of at most lim.MaxBytes bytes from r to a new
// file in dir, without looking at what it holds, through a small buffer:
// reading more is ErrTooLarge (and stops there), as it is for Read, and
// leaves no file behind, nor does any other error.
func Spool(dir string, r io.Reader, lim Limits) (*File, error) {
	lim = lim.withDefaults()
	f, err := os.CreateTemp(dir, "upload-*")
	if err != nil {
		return nil, fmt.Errorf("picture: spool upload: %w", err)
	}
	// Through a writer without ReadFrom, so that the copy uses this buffer
	// rather than one of 32 KiB per upload.
	n, err := io.CopyBuffer(struct{ io.Writer }{f}, io.LimitReader(r, lim.MaxBytes+1), make([]byte, 8<<10))
	if err == nil && n > lim.MaxBytes {
		err = fmt.Errorf("%w: more than %d bytes", ErrTooLarge, lim.MaxBytes)
	} else if err != nil {
		err = fmt.Errorf("picture: read upload: %w", err)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{f: f, size: n}, nil
}

// Size is the upload's length in bytes.
func (f *File) Size() int64 { return f.size }

// ReadAt reads the upload's bytes at off.
func (f *File) ReadAt(p []byte, off int64) (int, error) { return f.f.ReadAt(p, off) }

// Close closes and removes the file; later calls do nothing.
func (f *File) Close() error {
	f.close.Do(func() {
		err := f.f.Close()
		if rerr := os.Remove(f.f.Name()); err == nil {
			err = rerr
		}
		f.err = err
	})
	return f.err
}
