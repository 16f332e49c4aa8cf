// Package safetensors reads and writes the safetensors format, the tensor
// file format most of the ML world reads (Hugging Face's safetensors, PyTorch,
// JAX, numpy via the `safetensors` Python package), so that a gputrain
// checkpoint can be loaded anywhere without knowing anything about Go.
//
// Layout: an 8-byte little-endian unsigned header length N, then N bytes of
// JSON — {"__metadata__": {string: string}, NAME: {"dtype": "F32", "shape":
// [..], "data_offsets": [begin, end]}, ...} — padded with spaces to a
// multiple of 8, then the data buffer. Offsets are relative to the start of
// the buffer; tensors are row-major, little-endian, and together cover the
// buffer exactly (no holes, no overlaps). Write orders the tensors as
// Hugging Face's writer does, by element size (largest first) and then by
// name, so every tensor starts at a file offset that is a multiple of its
// element size and can be mapped without a copy (numpy.frombuffer,
// torch.frombuffer).
//
// The reader trusts nothing in a file: the header length, every shape and
// every offset are checked against the file's real size before anything is
// allocated, so a lying header cannot cause a huge allocation.
package safetensors
