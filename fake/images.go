package fake

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"hash/crc32"
)

// PNGBomb is a PNG of a few hundred bytes whose header claims w×h 8-bit
// grey pixels; its IDAT holds only the first rows (a megabyte of zeros,
// compressed). Decoding it would allocate w×h bytes before reading a pixel.
func PNGBomb(w, h uint32) []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 0, 0, 0, 0) // depth 8, grey, deflate, filter 0, no interlace
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression) // the level is valid
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, PNGChunk("IHDR", ihdr)...)
	b = append(b, PNGChunk("IDAT", z.Bytes())...)
	return append(b, PNGChunk("IEND", nil)...)
}

// PNGChunk is one PNG chunk: length, type, data and CRC.
func PNGChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(append([]byte(typ), data...)))
}

// DeepPNG is the 16-bit bomb: a valid 4096×4096 16-bit RGB PNG of about
// 140 KB, within the usual pixel limits, whose pixels decode to 128 MiB and
// take over a second of CPU.
func DeepPNG() []byte {
	ihdr := binary.BigEndian.AppendUint32(nil, 4096)
	ihdr = binary.BigEndian.AppendUint32(ihdr, 4096)
	ihdr = append(ihdr, 16, 2, 0, 0, 0) // depth 16, RGB, deflate, filter 0, no interlace
	var z bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&z, zlib.BestCompression) // the level is valid
	row := make([]byte, 1+4096*6)
	for range 4096 {
		zw.Write(row)
	}
	zw.Close()
	b := []byte("\x89PNG\r\n\x1a\n")
	b = append(b, PNGChunk("IHDR", ihdr)...)
	b = append(b, PNGChunk("IDAT", z.Bytes())...)
	return append(b, PNGChunk("IEND", nil)...)
}
