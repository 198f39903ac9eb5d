package picture

import (
	"bytes"
	"encoding/binary"
	"image"
)

// What Process reads from a JPEG's structure before decoding it (the EXIF
// orientation, the number of scans), and applying the orientation.

// jpegOrientation returns the EXIF orientation (1–8) of a JPEG, or 1 when it
// has none or it cannot be read.
//
// Phones store portrait photos sideways and record the needed rotation in
// this tag. Re-encoding drops the tag with the rest of the metadata, so the
// rotation has to be applied to the pixels, or the picture would turn on its
// side. Only the one tag is needed, which a few bounds-checked lines read
// without a dependency on a general EXIF library.
func jpegOrientation(src *source) int {
	if sig := src.slice(0, 4); sig == nil || sig[0] != 0xFF || sig[1] != 0xD8 {
		return 1
	}
	i := int64(2)
	for {
		hdr := src.slice(i, 4)
		if hdr == nil {
			return 1
		}
		if hdr[0] != 0xFF {
			return 1
		}
		marker := hdr[1]
		switch {
		case marker == 0xFF: // fill byte
			i++
			continue
		case marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8): // no length
			i += 2
			continue
		case marker == 0xDA || marker == 0xD9: // start of scan, end of image
			return 1
		}
		n := int64(binary.BigEndian.Uint16(hdr[2:]))
		if n < 2 || i+2+n > src.size {
			return 1
		}
		seg := src.slice(i+4, n-2)
		if seg == nil {
			return 1
		}
		if marker == 0xE1 && bytes.HasPrefix(seg, []byte("Exif\x00\x00")) {
			return tiffOrientation(seg[6:])
		}
		i += 2 + n
	}
}

// jpegScans counts the start-of-scan markers of a JPEG, walking its segments
// the way a decoder finds them: by length in the header, byte by byte through
// entropy-coded data (where a 0xFF is followed by a stuffed 0x00 or a restart
// marker). It does not validate anything; it only has to count at least the
// scans a decoder would decode.
func jpegScans(src *source) int {
	n := 0
	for i := int64(2); src.has(i, 2); {
		if src.at(i) != 0xFF {
			i++ // entropy-coded data, or junk that decoders skip
			continue
		}
		m := src.at(i + 1)
		switch {
		case m == 0xFF: // fill byte
			i++
			continue
		case m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8): // stuffing, TEM, RSTn, SOI
			i += 2
			continue
		case m == 0xD9: // end of image
			return n
		}
		if m == 0xDA {
			n++
		}
		l := src.slice(i+2, 2)
		if l == nil {
			return n
		}
		i += 2 + max(2, int64(binary.BigEndian.Uint16(l)))
	}
	return n
}

// tiffOrientation reads tag 0x0112 from IFD0 of the TIFF structure that an
// EXIF segment holds.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(t[:2]) {
	case "II":
		bo = binary.LittleEndian
	case "MM":
		bo = binary.BigEndian
	default:
		return 1
	}
	if bo.Uint16(t[2:]) != 42 {
		return 1
	}
	off := uint64(bo.Uint32(t[4:]))
	if off < 8 || off+2 > uint64(len(t)) {
		return 1
	}
	count := int(bo.Uint16(t[off:]))
	entries := t[off+2:]
	for k := range count {
		if 12*k+12 > len(entries) {
			return 1
		}
		e := entries[12*k : 12*k+12]
		if bo.Uint16(e) != 0x0112 {
			continue
		}
		var v uint32
		switch typ, n := bo.Uint16(e[2:]), bo.Uint32(e[4:]); {
		case typ == 3 && n == 1: // SHORT, the standard type
			v = uint32(bo.Uint16(e[8:]))
		case typ == 4 && n == 1: // LONG, written by a few tools
			v = bo.Uint32(e[8:])
		default:
			return 1
		}
		if v < 1 || v > 8 {
			return 1
		}
		return int(v)
	}
	return 1
}

// orient returns src transformed by EXIF orientation o, so that it displays
// upright without the tag. Orientations 5–8 swap width and height.
func orient(src *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return src
	}
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range h {
		for x := range w {
			var dx, dy int
			switch o {
			case 2: // mirrored left to right
				dx, dy = w-1-x, y
			case 3: // upside down
				dx, dy = w-1-x, h-1-y
			case 4: // mirrored top to bottom
				dx, dy = x, h-1-y
			case 5: // transposed
				dx, dy = y, x
			case 6: // needs a quarter turn clockwise
				dx, dy = h-1-y, x
			case 7: // transversed
				dx, dy = h-1-y, w-1-x
			case 8: // needs a quarter turn anticlockwise
				dx, dy = y, w-1-x
			}
			s := src.PixOffset(src.Rect.Min.X+x, src.Rect.Min.Y+y)
			d := dst.PixOffset(dx, dy)
			copy(dst.Pix[d:d+4], src.Pix[s:s+4])
		}
	}
	return dst
}
