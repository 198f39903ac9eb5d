// Package residency gives back to the operating system the memory a process
// holds but no longer uses: the heap's free pages, and the pages of its own
// executable that only its start-up touched.
//
// Go runs every linked package's initialisation before main, and the kernel
// maps a binary's pages 64 KiB around each fault, so a server that links
// large SDKs (the GCS client brings gRPC, its xDS resolver and their
// protobuf registrations) holds tens of MiB of its executable resident
// that serving never reads again. Those pages are clean copies of the file:
// asking the kernel to reclaim them costs nothing but a fault, from the page
// cache or the disk, for a page that is needed after all.
package residency

import (
	"fmt"
	"runtime/debug"
)

// Trim returns the heap's free memory to the operating system
// (debug.FreeOSMemory, which first collects garbage) and asks the kernel to
// reclaim the pages of the executable's read-only mappings. Call it when
// the process goes idle: after start-up, and after a burst of work that
// grew the heap. The pages a later request needs come back on first use.
//
// It returns an error only when the kernel refuses; the process is then as
// it was, with the heap trimmed.
func Trim() error {
	debug.FreeOSMemory()
	if err := pageOutExecutable(); err != nil {
		return fmt.Errorf("residency: %w", err)
	}
	return nil
}
