package picture

import (
	"bytes"
	"image"
	"image/color"
	"math"
	"testing"
)

// photoLike is a w×h opaque image with smooth gradients, edges and some
// noise, so that its JPEG and PNG encodings are about as large as a photo's.
func photoLike(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	seed := uint32(1)
	for y := range h {
		for x := range w {
			seed = seed*1664525 + 1013904223
			n := int(seed>>30) - 2
			v := 128 + 100*math.Sin(float64(x)/97)*math.Cos(float64(y)/61)
			edge := 0
			if (x/512+y/512)%2 == 0 {
				edge = 40
			}
			m.SetRGBA(x, y, color.RGBA{
				R: clamp8(int(v) + n + edge), G: clamp8(x*255/w + n), B: clamp8(y*255/h - n), A: 255,
			})
		}
	}
	return m
}

func clamp8(v int) uint8 { return uint8(min(255, max(0, v))) }

// BenchmarkProcess4096 measures the largest pictures within the default
// limits, scaled to 1024: allocated bytes are what the scaler must keep
// within the memory budget.
func BenchmarkProcess4096(b *testing.B) {
	m := photoLike(DefaultMaxSide, DefaultMaxSide)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"jpeg", encodeJPEG(b, m)},
		{"png", encodePNG(b, m)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				// A lossless 4096² photo is larger than the upload limit.
				if _, err := Process(bytes.NewReader(tc.data), Limits{MaxBytes: 64 << 20}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(tc.data)), "file-bytes")
		})
	}
}

// checkerboard is a w×h image of 1-pixel squares of a and b, whose correct
// average at any scale is the mean of a and b.
func checkerboard(w, h int, a, b color.Color) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			if (x+y)%2 == 0 {
				m.Set(x, y, a)
			} else {
				m.Set(x, y, b)
			}
		}
	}
	return m
}

// TestScaleDoesNotAlias: detail finer than the output's pixels must average
// to grey, not fold back as moiré. Point sampling of these patterns gives
// stripes of black and white.
func TestScaleDoesNotAlias(t *testing.T) {
	stripes := func(w, h int) *image.Gray {
		m := image.NewGray(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				m.Pix[y*m.Stride+x] = uint8(255 * (x % 2))
			}
		}
		return m
	}
	tests := []struct {
		name string
		src  image.Image
		tol  int
	}{
		// Box by 4 alone.
		{"checkerboard 4096²", checkerboard(4096, 4096, color.Black, color.White), 1},
		// Box by 2, then area by 1.46.
		{"stripes 3000×2000", stripes(3000, 2000), 1},
		// Area by 1.95, no box step: the worst case of the second step.
		{"stripes 2000×1000", stripes(2000, 1000), 7},
		{"checkerboard 1999×1999", checkerboard(1999, 1999, color.Black, color.White), 7},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.src.Bounds()
			out := scale(tc.src, b, 1024)
			if w, h := outputSize(b.Dx(), b.Dy(), 1024); out.Rect != image.Rect(0, 0, w, h) {
				t.Fatalf("output %v, want %d×%d", out.Rect, w, h)
			}
			bad := 0
			for i := 0; i < len(out.Pix); i += 4 {
				p := out.Pix[i : i+4]
				if abs(int(p[0])-128) > tc.tol || p[0] != p[1] || p[1] != p[2] || p[3] != 255 {
					if bad++; bad <= 3 {
						t.Errorf("pixel %d is %v, want grey 128±%d", i/4, p, tc.tol)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%d of %d pixels are not grey", bad, len(out.Pix)/4)
			}
		})
	}
}

// TestScaleKeepsGradient: a smooth ramp keeps its endpoints and its order.
func TestScaleKeepsGradient(t *testing.T) {
	for _, w := range []int{4096, 3000, 1500} {
		m := image.NewRGBA(image.Rect(0, 0, w, 64))
		for y := range 64 {
			for x := range w {
				v := uint8(x * 255 / (w - 1))
				m.SetRGBA(x, y, color.RGBA{v, 255 - v, 128, 255})
			}
		}
		out := scale(m, m.Rect, 1024)
		first, last := out.RGBAAt(0, 0), out.RGBAAt(out.Rect.Dx()-1, 0)
		if first.R > 2 || first.G < 253 || last.R < 253 || last.G > 2 || first.B != 128 {
			t.Errorf("width %d: ends %v and %v, want the ramp's 0 and 255", w, first, last)
		}
		for x := 1; x < out.Rect.Dx(); x++ {
			if out.RGBAAt(x, 0).R < out.RGBAAt(x-1, 0).R {
				t.Errorf("width %d: the ramp goes down at %d", w, x)
				break
			}
		}
	}
}

// TestScaleTransparency: averages are of premultiplied colour, so the colour
// of transparent pixels (here red) does not bleed into the opaque ones.
func TestScaleTransparency(t *testing.T) {
	clearRed := color.NRGBA{255, 0, 0, 0}
	for _, w := range []int{4096, 3000, 2000} {
		m := checkerboard(w, 32, clearRed, color.NRGBA{0, 255, 0, 255})
		out := scale(m, m.Rect, 1024)
		for i := 0; i < len(out.Pix); i += 4 {
			p := out.Pix[i : i+4]
			if p[0] != 0 || p[2] != 0 || p[1] != p[3] || abs(int(p[3])-128) > 8 {
				t.Fatalf("width %d: pixel %d is %v, want half-transparent green", w, i/4, p)
			}
		}
	}
}

// TestRowReader checks each fast path against At.
func TestRowReader(t *testing.T) {
	r := image.Rect(3, 2, 40, 9)
	seed := uint32(7)
	rnd := func() uint8 { seed = seed*1664525 + 1013904223; return uint8(seed >> 24) }
	fill := func(pix []uint8) {
		for i := range pix {
			pix[i] = rnd()
		}
	}
	rgba, nrgba, gray, gray16 := image.NewRGBA(r), image.NewNRGBA(r), image.NewGray(r), image.NewGray16(r)
	fill(nrgba.Pix)
	fill(gray.Pix)
	fill(gray16.Pix)
	for i := 0; i < len(rgba.Pix); i += 4 {
		a := rnd()
		below := func() uint8 { return uint8(int(rnd()) * int(a) / 255) } // premultiplied: at most a
		rgba.Pix[i], rgba.Pix[i+1], rgba.Pix[i+2], rgba.Pix[i+3] = below(), below(), below(), a
	}
	var imgs []image.Image
	for _, ss := range []image.YCbCrSubsampleRatio{image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio422} {
		y := image.NewYCbCr(r, ss)
		fill(y.Y)
		fill(y.Cb)
		fill(y.Cr)
		imgs = append(imgs, y)
	}
	ya := image.NewNYCbCrA(r, image.YCbCrSubsampleRatio420)
	fill(ya.Y)
	fill(ya.Cb)
	fill(ya.Cr)
	fill(ya.A)
	pal := image.NewPaletted(r, color.Palette{color.Transparent, color.NRGBA{200, 100, 50, 128}, color.White})
	for i := range pal.Pix {
		pal.Pix[i] = rnd() % 3
	}
	imgs = append(imgs, rgba, nrgba, gray, gray16, ya, pal)
	for _, m := range imgs {
		rd := newRowReader(m)
		row := make([]uint16, 4*r.Dx())
		for y := r.Min.Y; y < r.Max.Y; y++ {
			rd.read(row, y)
			for x := range r.Dx() {
				cr, cg, cb, ca := m.At(r.Min.X+x, y).RGBA()
				want := [4]uint16{uint16(cr), uint16(cg), uint16(cb), uint16(ca)}
				if got := [4]uint16(row[4*x : 4*x+4]); got != want {
					t.Fatalf("%T at (%d,%d): %v, want %v", m, r.Min.X+x, y, got, want)
				}
			}
		}
	}
}

// TestScaleMemory: scaling holds little beyond its output and, when both
// steps run, the intermediate image; a kernel scaler's temporary is
// destination width × source height × 32 bytes, 128 MiB for 4096 → 1024.
func TestScaleMemory(t *testing.T) {
	for _, r := range []image.Rectangle{image.Rect(0, 0, 4096, 4096), image.Rect(0, 0, 4000, 3000), image.Rect(0, 0, 2047, 2047)} {
		src := image.NewYCbCr(r, image.YCbCrSubsampleRatio420)
		n := allocated(func() { scale(src, r, 1024) })
		w, h := outputSize(r.Dx(), r.Dy(), 1024)
		want := outputBytes(r.Dx(), r.Dy(), 1024, false) - int64(w*h*4) - 1<<20 // less the encoder's share
		if int64(n) > want {
			t.Errorf("%v: scale allocated %d bytes, Memory counts %d", r, n, want)
		}
		if int64(n) > 12<<20 {
			t.Errorf("%v: scale allocated %d bytes, want at most 12 MiB", r, n)
		}
	}
}

// TestScaleThinStrip: a strip thinner than the box factor still has its
// pixels in the output.
func TestScaleThinStrip(t *testing.T) {
	for _, r := range []image.Rectangle{image.Rect(0, 0, 4096, 3), image.Rect(0, 0, 2, 4000), image.Rect(0, 0, 4096, 1)} {
		m := image.NewRGBA(r)
		for i := range m.Pix {
			m.Pix[i] = 200
		}
		out := scale(m, r, 1024)
		w, h := outputSize(r.Dx(), r.Dy(), 1024)
		if out.Rect.Dx() != w || out.Rect.Dy() != h {
			t.Fatalf("%v: output %v, want %d×%d", r, out.Rect, w, h)
		}
		for i, v := range out.Pix {
			if v != 200 {
				t.Fatalf("%v: byte %d is %d, want 200", r, i, v)
			}
		}
	}
}
