// Package picture checks, cleans and stores users' profile pictures.
//
// Process turns an upload into a small, metadata-free JPEG or PNG; Key names
// the result after its content; a Store keeps it (Google Cloud Storage in
// production, a local directory by default) and hands out URLs that a plain
// GET can download.
package picture

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math"

	"golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

// The defaults of Limits, exported so that the HTTP layer can quote them in
// its error messages.
const (
	DefaultMaxBytes      = 5 << 20 // 5 MiB
	DefaultMaxSide       = 4096
	DefaultOutputMaxSide = 1024
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
	// ErrDimensions: a side or the pixel count is over the limit, or zero
	// (HTTP 422).
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
func sniff(data []byte) (format, bool) {
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
// It reads at most lim.MaxBytes+1 bytes from r, and checks the dimensions in
// the image header before decoding, so neither a huge upload nor a small
// file that claims a huge size (a decompression bomb) costs much memory.
// Errors wrap ErrTooLarge, ErrNotImage or ErrDimensions, or else the error
// of r.
//
// At the default limits one call costs up to about a second of CPU and
// 130 MB (an 8-bit 4096×3072 photo) to 260 MB (a 16-bit 4096×4096 PNG, which
// may be a file of 150 KB) of transient memory, for the decoded pixels and
// the scaler's buffers: callers should bound how many calls run at once.
func Process(r io.Reader, lim Limits) (Image, error) {
	lim = lim.withDefaults()
	data, err := io.ReadAll(io.LimitReader(r, lim.MaxBytes+1))
	if err != nil {
		return Image{}, fmt.Errorf("picture: read upload: %w", err)
	}
	if int64(len(data)) > lim.MaxBytes {
		return Image{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, lim.MaxBytes)
	}
	f, ok := sniff(data)
	if !ok {
		return Image{}, fmt.Errorf("%w: not JPEG, PNG, GIF or WebP", ErrNotImage)
	}
	if f.name == "jpeg" {
		if n := jpegScans(data); n > maxJPEGScans {
			return Image{}, fmt.Errorf("%w: jpeg has %d scans, more than %d", ErrNotImage, n, maxJPEGScans)
		}
	}
	cfg, err := f.config(bytes.NewReader(data))
	if err != nil {
		return Image{}, fmt.Errorf("%w: %s header: %v", ErrNotImage, f.name, err)
	}
	if err := checkDimensions(cfg.Width, cfg.Height, lim); err != nil {
		return Image{}, err
	}
	src, err := decode(f, data)
	if err != nil {
		return Image{}, err
	}
	canvas := image.Rect(0, 0, cfg.Width, cfg.Height)
	if b := src.Bounds(); b.Empty() || !b.In(canvas) || (f.name != "gif" && b != canvas) {
		// The header said one size and the pixel data another.
		return Image{}, fmt.Errorf("%w: %s decodes to %v, its header says %v", ErrNotImage, f.name, b, canvas)
	}
	out := scale(src, canvas, lim.OutputMaxSide)
	if f.name == "jpeg" {
		out = orient(out, jpegOrientation(data))
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
func decode(f format, data []byte) (img image.Image, err error) {
	defer func() {
		if p := recover(); p != nil {
			img, err = nil, fmt.Errorf("%w: %s decoder panicked: %v", ErrNotImage, f.name, p)
		}
	}()
	img, err = f.decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%w: decode %s: %v", ErrNotImage, f.name, err)
	}
	return img, nil
}

// scale draws src, which lies within canvas, into a new RGBA image whose
// longer side is at most maxSide. Every path produces a fresh *image.RGBA, so
// orientation and encoding deal with one pixel layout only.
func scale(src image.Image, canvas image.Rectangle, maxSide int) *image.RGBA {
	w, h := canvas.Dx(), canvas.Dy()
	if long := max(w, h); long > maxSide {
		w = max(1, int(math.Round(float64(w)*float64(maxSide)/float64(long))))
		h = max(1, int(math.Round(float64(h)*float64(maxSide)/float64(long))))
	}
	if src.Bounds() != canvas {
		// A GIF whose first frame covers only part of its logical screen:
		// the rest is transparent, as a browser shows it.
		full := image.NewRGBA(canvas)
		draw.Draw(full, src.Bounds(), src, src.Bounds().Min, draw.Src)
		src = full
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	if w == canvas.Dx() && h == canvas.Dy() {
		draw.Draw(dst, dst.Bounds(), src, canvas.Min, draw.Src)
		return dst
	}
	// Catmull-Rom widens its kernel when shrinking, so a 4096-pixel photo
	// scaled to 1024 does not alias (moiré, jagged edges) the way nearest
	// neighbour or plain bilinear sampling would.
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, canvas, draw.Src, nil)
	return dst
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
