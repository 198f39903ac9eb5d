package argon2

import (
	"bytes"
	"testing"

	upstream "golang.org/x/crypto/argon2"
)

// TestMemoryMatchesUpstream: hashes computed in reused (and dirty) memory
// equal golang.org/x/crypto/argon2's, across parameter changes that shrink
// and grow the memory.
func TestMemoryMatchesUpstream(t *testing.T) {
	var m Memory
	for i, c := range []struct {
		time, memory uint32
		threads      uint8
	}{
		{1, 64, 1}, {2, 256, 1}, {3, 128, 2}, {1, 1024, 4}, {2, 512, 1}, {1, 65, 1},
	} {
		pw, salt := []byte{byte(i), 'p', 'w'}, []byte("somesaltsomesalt")
		want := upstream.IDKey(pw, salt, c.time, c.memory, c.threads, 32)
		if got := m.IDKey(pw, salt, c.time, c.memory, c.threads, 32); !bytes.Equal(got, want) {
			t.Errorf("%+v: reused memory gives %x, upstream %x", c, got, want)
		}
		if got := IDKey(pw, salt, c.time, c.memory, c.threads, 32); !bytes.Equal(got, want) {
			t.Errorf("%+v: IDKey gives %x, upstream %x", c, got, want)
		}
	}
}
