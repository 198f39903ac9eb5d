package residency

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// pageOutExecutable advises MADV_PAGEOUT (Linux 5.4) on every read-only
// mapping of the running executable: the kernel reclaims the clean pages
// no other process maps, so they leave the page cache too, rather than
// only the process's page tables (as MADV_DONTNEED would). Writable
// mappings (the data segments) are left alone: their pages may hold the
// process's own changes.
//
// It first advises MADV_RANDOM on the same mappings, so that a page
// faulted back in later is read alone: otherwise the kernel reads ahead
// around each fault and maps up to 64 KiB of neighbours with it, and under
// load the executable's resident part grew back by 20–30 MiB of code the
// load never ran (make bench's picture flood: 27 MiB of file pages at its
// peak, 19 MiB with the advice). Code runs as fast once resident; the
// first run of a cold path takes a few more faults.
func pageOutExecutable() error {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return err
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return err
	}
	ranges, err := readOnlyMappings(maps, exe)
	if err != nil {
		return err
	}
	for _, r := range ranges {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_RANDOM); errno != 0 {
			return fmt.Errorf("madvise MADV_RANDOM %#x-%#x: %w", r.start, r.end, errno)
		}
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, r.start, r.end-r.start, unix.MADV_PAGEOUT); errno != 0 {
			return fmt.Errorf("madvise MADV_PAGEOUT %#x-%#x: %w", r.start, r.end, errno)
		}
	}
	return nil
}

type mapping struct{ start, end uintptr }

// readOnlyMappings parses /proc/self/maps ("start-end perms offset dev inode
// path" per line) for the mappings of path without write permission. The
// kernel marks a mapped file replaced since with " (deleted)".
func readOnlyMappings(maps []byte, path string) ([]mapping, error) {
	var out []mapping
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) < 6 {
			continue
		}
		name := string(bytes.Join(f[5:], []byte(" ")))
		if name != path && name != path+" (deleted)" {
			continue
		}
		if perms := f[1]; len(perms) < 2 || perms[1] != '-' {
			continue
		}
		lo, hi, ok := bytes.Cut(f[0], []byte("-"))
		if !ok {
			return nil, errors.New("maps: malformed address range " + string(f[0]))
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("maps: malformed address range %s: %w", f[0], err)
		}
		if end <= start {
			return nil, errors.New("maps: empty address range " + string(f[0]))
		}
		out = append(out, mapping{uintptr(start), uintptr(end)})
	}
	return out, sc.Err()
}
