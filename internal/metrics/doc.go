// Package metrics writes and reads the per-epoch metrics file of a training
// run: JSON lines, one object (a Record) per epoch, each flushed to disk
// before training goes on, so a crash loses at most the epoch in flight and
// the file always parses. A resumed run appends to the same file.
package metrics
