//go:build !linux

package residency

// pageOutExecutable does nothing where the kernel has no MADV_PAGEOUT.
func pageOutExecutable() error { return nil }
