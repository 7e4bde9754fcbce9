// Package prefetch asks the processor to bring memory into its cache ahead
// of use, without waiting for it: a load that misses stalls the goroutine
// that makes it, a prefetch does not.
//
// The broker uses it on the block of the next queue message a publisher's
// connection will fill: with a large prefetch window thousands of blocks
// are live, and a recycled one has usually left the cache (or was last
// written on another core) by the time a SEND takes it.
package prefetch
