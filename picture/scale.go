package picture

import (
	"image"
	"image/color"

	"golang.org/x/image/draw"
)

// Scaling down a picture of up to 4096×4096 to 1024 must not cost much more
// memory than the decoded image, which the caller has already reserved. A
// kernel scaler from x/image/draw (CatmullRom, and BiLinear too, which is a
// Kernel) allocates a temporary of destination width × source height ×
// [4]float64: 128 MiB for 4096 → 1024, twice the decoded image. So scale
// shrinks in two steps that hold no more than a row or two of working memory
// beside their output:
//
//  1. by the integer factor k = ⌊longer side / maxSide⌋ when k ≥ 2, each
//     pixel the average of its k×k source block (box). A box of the new
//     pixel's size covers every source pixel exactly once with equal
//     weight: detail finer than the new pixels is averaged away instead of
//     folding back as moiré, as point sampling would (a 1-pixel
//     checkerboard comes out uniform grey);
//  2. then, by what remains (a factor below 2, or 1 to 2 when the first
//     step was skipped), by area averaging again, each output pixel the
//     mean of the source area it covers, partly covered pixels weighted by
//     the part. This is what draw.BiLinear computes below factor 2 (its
//     tent widened to the factor), less its float64 temporary; and unlike
//     draw.ApproxBiLinear, which blends only the 4 pixels nearest each
//     sample and so skips up to half the source at a factor near 2, it
//     reads every source pixel, so it does not alias either.
//
// Averages are of premultiplied values, as image.RGBA holds them, so that
// the colour of a transparent pixel (often black) does not bleed into its
// opaque neighbours.

// scale draws src, which lies within canvas, into a new RGBA image whose
// longer side is at most maxSide. Every path produces a fresh *image.RGBA, so
// orientation and encoding deal with one pixel layout only.
func scale(src image.Image, canvas image.Rectangle, maxSide int) *image.RGBA {
	w, h := outputSize(canvas.Dx(), canvas.Dy(), maxSide)
	if src.Bounds() != canvas {
		// A GIF whose first frame covers only part of its logical screen:
		// the rest is transparent, as a browser shows it.
		full := image.NewRGBA(canvas)
		draw.Draw(full, src.Bounds(), src, src.Bounds().Min, draw.Src)
		src = full
	}
	if w == canvas.Dx() && h == canvas.Dy() {
		dst := image.NewRGBA(image.Rect(0, 0, w, h))
		draw.Draw(dst, dst.Bounds(), src, canvas.Min, draw.Src)
		return dst
	}
	if k := boxFactor(canvas.Dx(), canvas.Dy(), maxSide); k >= 2 {
		src = boxShrink(src, k)
		if b := src.Bounds(); b.Dx() == w && b.Dy() == h {
			return src.(*image.RGBA)
		}
	}
	return areaScale(src, w, h)
}

// boxFactor is the integer factor of scale's first step: no more than the
// shorter side, so that a thin strip keeps at least one row.
func boxFactor(w, h, maxSide int) int {
	return min(max(w, h)/maxSide, w, h)
}

// boxShrink returns src shrunk by k: (w/k)×(h/k) pixels, each the average of
// a k×k block. The last w%k columns and h%k rows (fewer than k) are left
// out, which changes the aspect ratio by less than one output pixel.
func boxShrink(src image.Image, k int) *image.RGBA {
	b := src.Bounds()
	bw, bh := b.Dx()/k, b.Dy()/k
	dst := image.NewRGBA(image.Rect(0, 0, bw, bh))
	rd := newRowReader(src)
	row := make([]uint16, 4*bw*k)
	sum := make([]uint64, 4*bw)
	n := uint64(k) * uint64(k) * 0x101 // 16-bit samples to 8-bit averages
	for y := range bh {
		clear(sum)
		for j := range k {
			rd.read(row, b.Min.Y+y*k+j)
			for x := range bw {
				s := sum[4*x : 4*x+4 : 4*x+4]
				for i := 4 * x * k; i < 4*(x+1)*k; i += 4 {
					s[0] += uint64(row[i])
					s[1] += uint64(row[i+1])
					s[2] += uint64(row[i+2])
					s[3] += uint64(row[i+3])
				}
			}
		}
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*bw]
		for i, s := range sum {
			out[i] = uint8((s + n/2) / n)
		}
	}
	return dst
}

// span is the source pixels one output pixel covers along an axis, and how
// much of each.
type span struct {
	first   int
	weights []float32 // fractions of the area, summing to 1
}

// spans divides src source pixels over dst output pixels: output pixel i
// covers source [i·s, (i+1)·s) with s = src/dst.
func spans(src, dst int) []span {
	s := float64(src) / float64(dst)
	out := make([]span, dst)
	for i := range out {
		lo, hi := float64(i)*s, float64(i+1)*s
		first := int(lo)
		last := min(src-1, int(hi-1e-9))
		sp := span{first: first, weights: make([]float32, last-first+1)}
		for j := first; j <= last; j++ {
			cover := min(hi, float64(j+1)) - max(lo, float64(j))
			sp.weights[j-first] = float32(cover / s)
		}
		out[i] = sp
	}
	return out
}

// areaScale returns src scaled to w×h, each output pixel the mean of the
// source area it covers. It keeps one source row and one row of sums.
func areaScale(src image.Image, w, h int) *image.RGBA {
	b := src.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	xs, ys := spans(b.Dx(), w), spans(b.Dy(), h)
	rd := newRowReader(src)
	row := make([]uint16, 4*b.Dx())
	acc := make([]float32, 4*w)
	for y, sy := range ys {
		clear(acc)
		for j, wy := range sy.weights {
			rd.read(row, b.Min.Y+sy.first+j)
			for x, sx := range xs {
				var r, g, bl, a float32
				p := row[4*sx.first:]
				for i, wx := range sx.weights {
					q := p[4*i : 4*i+4 : 4*i+4]
					r += wx * float32(q[0])
					g += wx * float32(q[1])
					bl += wx * float32(q[2])
					a += wx * float32(q[3])
				}
				s := acc[4*x : 4*x+4 : 4*x+4]
				s[0] += wy * r
				s[1] += wy * g
				s[2] += wy * bl
				s[3] += wy * a
			}
		}
		out := dst.Pix[y*dst.Stride : y*dst.Stride+4*w]
		for i, v := range acc {
			out[i] = uint8(min(255, v/0x101+0.5))
		}
		// Rounding each channel on its own can lift a colour above its
		// alpha by one; premultiplied colour never exceeds alpha.
		for i := 0; i < len(out); i += 4 {
			a := out[i+3]
			out[i], out[i+1], out[i+2] = min(out[i], a), min(out[i+1], a), min(out[i+2], a)
		}
	}
	return dst
}

// rowReader reads rows of an image as 16-bit premultiplied RGBA, with fast
// paths for what the decoders return.
type rowReader struct {
	src image.Image
	pal [][4]uint16 // *image.Paletted's palette, converted once
}

func newRowReader(src image.Image) *rowReader {
	rd := &rowReader{src: src}
	if p, ok := src.(*image.Paletted); ok {
		rd.pal = make([][4]uint16, 256)
		for i, c := range p.Palette {
			r, g, b, a := c.RGBA()
			rd.pal[i] = [4]uint16{uint16(r), uint16(g), uint16(b), uint16(a)}
		}
	}
	return rd
}

// read fills dst, 4 values a pixel, with the first len(dst)/4 pixels of row y.
func (rd *rowReader) read(dst []uint16, y int) {
	b := rd.src.Bounds()
	n := len(dst) / 4
	x0 := b.Min.X
	switch m := rd.src.(type) {
	case *image.RGBA:
		p := m.Pix[m.PixOffset(x0, y):][:4*n]
		for i, v := range p {
			dst[i] = uint16(v) * 0x101
		}
	case *image.NRGBA:
		p := m.Pix[m.PixOffset(x0, y):][:4*n]
		for i := 0; i < len(p); i += 4 {
			a := uint32(p[i+3]) * 0x101
			dst[i] = uint16(uint32(p[i]) * 0x101 * a / 0xffff)
			dst[i+1] = uint16(uint32(p[i+1]) * 0x101 * a / 0xffff)
			dst[i+2] = uint16(uint32(p[i+2]) * 0x101 * a / 0xffff)
			dst[i+3] = uint16(a)
		}
	case *image.YCbCr:
		yi := m.YOffset(x0, y)
		for x := range n {
			ci := m.COffset(x0+x, y)
			// The 16-bit conversion, as At gives it.
			r, g, bl, _ := color.YCbCr{Y: m.Y[yi+x], Cb: m.Cb[ci], Cr: m.Cr[ci]}.RGBA()
			dst[4*x], dst[4*x+1], dst[4*x+2], dst[4*x+3] = uint16(r), uint16(g), uint16(bl), 0xffff
		}
	case *image.Gray:
		p := m.Pix[m.PixOffset(x0, y):][:n]
		for x, v := range p {
			g := uint16(v) * 0x101
			dst[4*x], dst[4*x+1], dst[4*x+2], dst[4*x+3] = g, g, g, 0xffff
		}
	case *image.Paletted:
		p := m.Pix[m.PixOffset(x0, y):][:n]
		for x, v := range p {
			copy(dst[4*x:4*x+4], rd.pal[v][:])
		}
	case image.RGBA64Image:
		// Every other image type of the standard library: no allocation
		// per pixel, unlike At's color.Color.
		for x := range n {
			c := m.RGBA64At(x0+x, y)
			dst[4*x], dst[4*x+1], dst[4*x+2], dst[4*x+3] = c.R, c.G, c.B, c.A
		}
	default:
		for x := range n {
			r, g, bl, a := m.At(x0+x, y).RGBA()
			dst[4*x], dst[4*x+1], dst[4*x+2], dst[4*x+3] = uint16(r), uint16(g), uint16(bl), uint16(a)
		}
	}
}
