package picture

import (
	"bytes"
	"encoding/binary"
	"image"
	"image/color"
)

// What decoding and processing an upload will cost in memory, judged from its
// header: the figures follow what image/png, image/jpeg, image/gif,
// x/image/webp and scale allocate.

// modelBytes is the bytes per pixel of an image in colour model m. YCbCr
// counts as 3, its worst subsampling (4:4:4); a palette as 1.
func modelBytes(m color.Model) int64 {
	switch m {
	case color.GrayModel, color.AlphaModel:
		return 1
	case color.Gray16Model, color.Alpha16Model:
		return 2
	case color.YCbCrModel:
		return 3
	case color.RGBAModel, color.NRGBAModel, color.CMYKModel, color.NYCbCrAModel:
		return 4
	case color.RGBA64Model, color.NRGBA64Model:
		return 8
	}
	if _, ok := m.(color.Palette); ok {
		return 1
	}
	return 8 // unknown: as the deepest
}

// cost returns the bytes of the decoded image (width × height × the bytes
// per pixel of the colour model the decoder will use) and the most memory
// processing it holds at once: the decoder's peak, which includes the
// decoded image, plus what scale, orient and encode allocate while it is
// still alive. trees is the part of memory that is a bound rather than an
// estimate (a lossless WebP stream's Huffman trees, which the header does
// not tell): the budget must hold it, but an upload is not refused for it.
func cost(format string, src *source, cfg image.Config, outMax int) (decoded, memory, trees int64) {
	w, h := int64(cfg.Width), int64(cfg.Height)
	px := w * h
	decoded = px * modelBytes(cfg.ColorModel)
	var decoder int64
	switch format {
	case "png":
		// DecodeConfig does not look at tRNS: with it, grey decodes to
		// NRGBA and 16-bit grey to NRGBA64.
		if pngTransparentGray(src) {
			decoded = px * 4
			if cfg.ColorModel == color.Gray16Model {
				decoded = px * 8
			}
		}
		decoder = decoded
		if b := src.slice(28, 1); b != nil && b[0] == 1 {
			// Adam7: each pass is decoded into an image of its own
			// before being merged; the largest is half the image.
			decoder += decoded / 2
		}
	case "jpeg":
		decoder = jpegDecoderBytes(src, cfg)
	case "gif":
		// One paletted frame within the logical screen; scale draws a
		// frame smaller than the screen onto a transparent RGBA canvas.
		decoder = px + 4*px
	case "webp":
		// Lossless: the pixels and a transform's copy of them; lossy with
		// alpha: the alpha plane decoded as NRGBA, then extracted.
		decoder = 2 * decoded
		if webpLossless(src) {
			trees = vp8lTreeBytes(cfg.Width, cfg.Height)
		}
	}
	memory = decoder + outputBytes(cfg.Width, cfg.Height, outMax, format == "jpeg") + trees
	return decoded, memory, trees
}

// webpLossless reports whether a WebP holds a lossless (VP8L) stream: the
// image itself, or, in the extended format with alpha, the alpha plane
// (whose ALPH chunk is such a stream when compressed).
func webpLossless(src *source) bool {
	switch string(src.slice(12, 4)) {
	case "VP8L":
		return true
	case "VP8X":
		flags := src.slice(20, 1)
		return flags == nil || flags[0]&0x10 != 0 // alpha
	}
	return false
}

// vp8lTreeBytes bounds what x/image/vp8l allocates for the Huffman groups
// of a w×h lossless stream before it reads a pixel: one group per tile of
// the meta-Huffman image (4×4 pixels at the smallest), at most 2,600 (the
// most vp8l accepts, as libwebp), each of five trees as large as their
// alphabets allow (the green one with an 11-bit colour cache), with their
// look-up tables and the code lengths read for them: 88 KiB, a little over
// the 81 KiB one costs as measured. A crafted file of under a megabyte
// reaches it (fake.WebPHuffmanBomb), where the header's pixels would say a
// few hundred kilobytes.
func vp8lTreeBytes(w, h int) int64 {
	const maxGroups, groupBytes = 2600, 88 << 10
	tiles := int64((w+3)/4) * int64((h+3)/4)
	return min(tiles, maxGroups) * groupBytes
}

// outputBytes is what scale, orient and encode allocate for a w×h image.
func outputBytes(w, h, outMax int, mayOrient bool) int64 {
	dw, dh := outputSize(w, h, outMax)
	out := int64(dw) * int64(dh) * 4 // the RGBA scale returns
	n := out
	if dw != w || dh != h {
		n += 4 << 10 // the scaler's small allocations
		sw, sh := w, h
		if k := boxFactor(w, h, outMax); k >= 2 {
			sw, sh = w/k, h/k
			// A row of 16-bit samples and a row of sums.
			n += int64(sw)*int64(k)*8 + int64(sw)*32
			if sw != dw || sh != dh {
				n += int64(sw) * int64(sh) * 4 // the intermediate RGBA
			}
		}
		if sw != dw || sh != dh {
			// A row of 16-bit samples, a row of float32 sums and the
			// spans of every output column and row.
			n += int64(sw)*8 + int64(dw)*16 + spanBytes(sw, dw) + spanBytes(sh, dh)
		}
	}
	if mayOrient {
		n += out // orient's copy
	}
	// The encoding: at most about the raw pixels, plus the compressor.
	return n + out + 1<<20
}

// spanBytes is what spans(src, dst) allocates: a span and its weights
// (rounded up to the allocator's 8 bytes) for each of dst pixels.
func spanBytes(src, dst int) int64 {
	weights := (src/dst+2)*4 + 8
	return int64(dst) * int64(32+weights)
}

// pngTransparentGray reports whether a PNG is greyscale (colour type 0) and
// has a tRNS chunk before its image data.
func pngTransparentGray(src *source) bool {
	const ihdrEnd = 8 + 8 + 13 + 4
	if b := src.slice(25, 1); src.size < ihdrEnd || b == nil || b[0] != 0 {
		return false
	}
	for i := int64(ihdrEnd); ; {
		hdr := src.slice(i, 8)
		if hdr == nil {
			return false
		}
		n := int64(binary.BigEndian.Uint32(hdr))
		switch string(hdr[4:8]) {
		case "tRNS":
			return true
		case "IDAT", "IEND":
			return false
		}
		next := i + 12 + n
		if next > src.size {
			return false
		}
		i = next
	}
}

// jpegDecoderBytes is what image/jpeg allocates for data: a plane per
// component at its sampling (padded to whole MCUs); for a progressive JPEG
// the coefficients of every block (64 int32s, 4 bytes a sample) kept
// between scans; and the conversion of RGB and 4-component JPEGs into a
// further RGBA or CMYK image.
func jpegDecoderBytes(src *source, cfg image.Config) int64 {
	fr, ok := jpegFrameOf(src)
	if !ok || len(fr.comps) == 0 {
		// Not parsed here though DecodeConfig read it: assume the worst
		// the decoder does, 4-component progressive.
		px := int64(cfg.Width+31) * int64(cfg.Height+31)
		return px * (4 + 16 + 4)
	}
	hmax, vmax := 1, 1
	for _, c := range fr.comps {
		hmax, vmax = max(hmax, c.h), max(vmax, c.v)
	}
	if len(fr.comps) == 1 {
		hmax, vmax = 1, 1 // image/jpeg ignores a lone component's factors
	}
	mxx := (int64(cfg.Width) + 8*int64(hmax) - 1) / (8 * int64(hmax))
	myy := (int64(cfg.Height) + 8*int64(vmax) - 1) / (8 * int64(vmax))
	var samples int64
	for _, c := range fr.comps {
		h, v := c.h, c.v
		if len(fr.comps) == 1 {
			h, v = 1, 1
		}
		samples += 8 * int64(h) * mxx * 8 * int64(v) * myy
	}
	n := samples
	if fr.progressive {
		n += 4 * samples
	}
	full := 8 * int64(hmax) * mxx * 8 * int64(vmax) * myy
	switch {
	case len(fr.comps) == 4:
		n += 4 * full
	case len(fr.comps) == 3 && fr.rgb():
		n += 4 * full
	}
	return n
}

// jpegFrame is what jpegFrameOf reads from a JPEG's header.
type jpegFrame struct {
	progressive    bool
	jfif           bool
	adobe          bool
	adobeTransform byte
	comps          []struct {
		id   byte
		h, v int
	}
}

// rgb reports whether image/jpeg treats a 3-component frame as RGB rather
// than YCbCr (and so converts it to an RGBA image).
func (f jpegFrame) rgb() bool {
	if f.jfif {
		return false
	}
	if f.adobe && f.adobeTransform == 0 {
		return true
	}
	return len(f.comps) == 3 && f.comps[0].id == 'R' && f.comps[1].id == 'G' && f.comps[2].id == 'B'
}

// jpegFrameOf walks a JPEG's header segments up to the first scan, as
// jpegOrientation does, and reads the frame header and the JFIF and Adobe
// markers.
func jpegFrameOf(src *source) (jpegFrame, bool) {
	var fr jpegFrame
	if sig := src.slice(0, 4); sig == nil || sig[0] != 0xFF || sig[1] != 0xD8 {
		return fr, false
	}
	seenSOF := false
	for i := int64(2); ; {
		hdr := src.slice(i, 4)
		if hdr == nil {
			return fr, seenSOF
		}
		if hdr[0] != 0xFF {
			return fr, seenSOF
		}
		marker := hdr[1]
		switch {
		case marker == 0xFF:
			i++
			continue
		case marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8):
			i += 2
			continue
		case marker == 0xDA || marker == 0xD9:
			return fr, seenSOF
		}
		n := int64(binary.BigEndian.Uint16(hdr[2:]))
		if n < 2 || i+2+n > src.size {
			return fr, seenSOF
		}
		seg := src.slice(i+4, n-2)
		if seg == nil {
			return fr, seenSOF
		}
		switch {
		case marker == 0xE0 && bytes.HasPrefix(seg, []byte("JFIF\x00")):
			fr.jfif = true
		case marker == 0xEE && len(seg) >= 12 && bytes.HasPrefix(seg, []byte("Adobe")):
			fr.adobe, fr.adobeTransform = true, seg[11]
		case marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC && !seenSOF:
			seenSOF = true
			fr.progressive = marker == 0xC2 || marker == 0xC6 || marker == 0xCA || marker == 0xCE
			if len(seg) < 6 {
				return fr, false
			}
			nc := int(seg[5])
			if len(seg) < 6+3*nc {
				return fr, false
			}
			for k := range nc {
				c := seg[6+3*k:]
				fr.comps = append(fr.comps, struct {
					id   byte
					h, v int
				}{c[0], max(1, int(c[1]>>4)), max(1, int(c[1]&0x0F))})
			}
		}
		i += 2 + n
	}
}
