package residency

import (
	"bufio"
	"bytes"
	"os"
	"reflect"
	"strconv"
	"testing"
)

func TestReadOnlyMappings(t *testing.T) {
	const exe = "/usr/local/bin/idp"
	maps := `00400000-01f09000 r-xp 00000000 08:01 1234 /usr/local/bin/idp
01f09000-03f49000 r--p 01b09000 08:01 1234 /usr/local/bin/idp
03f49000-04092000 rw-p 03b49000 08:01 1234 /usr/local/bin/idp
04092000-060f3000 rw-p 00000000 00:00 0
7f6c52d75000-7f6c52ecb000 r-xp 00028000 08:01 99 /usr/lib/x86_64-linux-gnu/libc.so.6
7f6c60000000-7f6c60001000 r--p 00000000 08:01 1234 /usr/local/bin/idp (deleted)
7f6c70000000-7f6c70001000 r--p 00000000 08:01 77 /usr/local/bin/idp-load
`
	got, err := readOnlyMappings([]byte(maps), exe)
	if err != nil {
		t.Fatal(err)
	}
	want := []mapping{{0x400000, 0x1f09000}, {0x1f09000, 0x3f49000}, {0x7f6c60000000, 0x7f6c60001000}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("readOnlyMappings = %x, want %x (the executable's mappings without w, a replaced file included)", got, want)
	}
	for _, bad := range []string{
		"zz-01f09000 r-xp 00000000 08:01 1234 /usr/local/bin/idp\n",
		"01f09000 r-xp 00000000 08:01 1234 /usr/local/bin/idp\n",
		"01f09000-00400000 r-xp 00000000 08:01 1234 /usr/local/bin/idp\n",
	} {
		if _, err := readOnlyMappings([]byte(bad), exe); err == nil {
			t.Errorf("readOnlyMappings(%q) succeeded, want an error", bad)
		}
	}
}

// executableRSS is the resident size in KiB of this test binary's
// read-only mappings, from /proc/self/smaps.
func executableRSS(t *testing.T) int {
	t.Helper()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	var total int
	var counting bool
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		switch {
		case len(f) >= 6 && bytes.Contains(f[0], []byte("-")):
			counting = string(bytes.Join(f[5:], []byte(" "))) == exe && f[1][1] == '-'
		case counting && len(f) == 3 && string(f[0]) == "Rss:":
			n, err := strconv.Atoi(string(f[1]))
			if err != nil {
				t.Fatal(err)
			}
			total += n
		}
	}
	return total
}

// TestTrimPagesOutTheExecutable: the test binary's code and read-only data,
// resident from running the tests so far, mostly leave the process.
func TestTrimPagesOutTheExecutable(t *testing.T) {
	before := executableRSS(t)
	if err := Trim(); err != nil {
		t.Fatal(err)
	}
	after := executableRSS(t)
	t.Logf("executable's read-only pages resident: %d KiB before Trim, %d KiB after", before, after)
	if before < 512 {
		t.Fatalf("only %d KiB of the executable resident before Trim: nothing to measure", before)
	}
	if after > before/2 {
		t.Errorf("after Trim %d KiB of the executable's read-only pages are resident, want at most half of the %d KiB before", after, before)
	}
}
