package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"unsafe"

	"github.com/gputrain/gputrain/model/safetensors"
)

// What a checkpoint carries so that damage and mix-ups are caught when it
// is loaded, rather than trained on or answered with:
//
//   - metadata "sha256": a JSON object with the SHA-256 of every tensor's
//     bytes, and under "__metadata__" that of every other metadata entry
//     (the keys in byte order, each key and value followed by a zero
//     byte: simple to recompute in any language). A flipped byte in a
//     weight, the RNG state or the optimizer state, an edited step counter
//     or setting, all fail DecodeCheckpoint, naming what changed.
//   - metadata "data_sha256": the fingerprint of the training data the
//     trainer was given (DataFingerprint), which Restore compares with the
//     data of the trainer it restores into: data of the same shape but
//     other values (inverted pixels, another file) is refused unless the
//     caller says it is meant (Checkpoint.AcceptOtherData).
//   - every weight finite: a checkpoint is never written with a NaN or an
//     infinity in it, and one that has them is refused on load.
const (
	metaChecksums   = "sha256"
	metaDataSHA256  = "data_sha256"
	checksumOfMeta  = "__metadata__"
	checksumsFormat = "hex SHA-256 per tensor name, and of the other metadata under " + checksumOfMeta
)

// ErrDamaged is wrapped by DecodeCheckpoint's error when a checkpoint does
// not match its own checksums.
var ErrDamaged = errors.New("checkpoint damaged")

// ErrOtherData is wrapped by Restore's error when the trainer's data is not
// the data the checkpoint was trained on.
var ErrOtherData = errors.New("other training data")

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// metadataDigest hashes every metadata entry but the checksums themselves:
// key NUL value NUL for each key in byte order.
func metadataDigest(md map[string]string) string {
	keys := make([]string, 0, len(md))
	for k := range md {
		if k != metaChecksums {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0})
		h.Write([]byte(md[k]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sealChecksums adds the "sha256" metadata to f; it must be the last change
// made to f.
func sealChecksums(f *safetensors.File) {
	sums := map[string]string{}
	for _, t := range f.Tensors {
		sums[t.Name] = sha256Hex(t.Data)
	}
	sums[checksumOfMeta] = metadataDigest(f.Metadata)
	b, _ := json.Marshal(sums)
	f.Metadata[metaChecksums] = string(b)
}

// verifyChecksums reports the first tensor (or the metadata) that does not
// match f's "sha256" metadata, and a tensor without a checksum.
func verifyChecksums(f *safetensors.File) error {
	raw, ok := f.Metadata[metaChecksums]
	if !ok {
		return fmt.Errorf("%w: no %q metadata (%s)", ErrDamaged, metaChecksums, checksumsFormat)
	}
	var sums map[string]string
	if err := json.Unmarshal([]byte(raw), &sums); err != nil {
		return fmt.Errorf("%w: metadata %s is not a JSON object of strings", ErrDamaged, metaChecksums)
	}
	if sums[checksumOfMeta] != metadataDigest(f.Metadata) {
		return fmt.Errorf("%w: the metadata (settings, shapes, names) do not match their checksum: edited or corrupted", ErrDamaged)
	}
	for _, t := range f.Tensors {
		want, ok := sums[t.Name]
		if !ok {
			return fmt.Errorf("%w: tensor %s has no checksum (added after saving?)", ErrDamaged, t.Name)
		}
		if sha256Hex(t.Data) != want {
			return fmt.Errorf("%w: tensor %s does not match its checksum: a changed byte (disk or transfer corruption, or an edit)", ErrDamaged, t.Name)
		}
	}
	for name := range sums {
		if _, ok := f.Tensor(name); !ok && name != checksumOfMeta {
			return fmt.Errorf("%w: tensor %s, listed in the checksums, is missing", ErrDamaged, name)
		}
	}
	return nil
}

// DataFingerprint is the hex SHA-256 of a data set: its sizes, every
// feature's float32 bits and every label. Two sets agree on it exactly when
// they hold the same rows in the same order.
func DataFingerprint(d *Data) string {
	h := sha256.New()
	var head [24]byte
	binary.LittleEndian.PutUint64(head[0:], uint64(d.N))
	binary.LittleEndian.PutUint64(head[8:], uint64(d.D))
	binary.LittleEndian.PutUint64(head[16:], uint64(d.Classes))
	h.Write(head[:])
	if nativeLittleEndian() && len(d.X) > 0 {
		// The bytes of the slice are its little-endian encoding: hash
		// them in place rather than copy 4 bytes per feature.
		h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&d.X[0])), 4*len(d.X)))
	} else {
		buf := make([]byte, 0, 1<<16)
		for _, v := range d.X {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				h.Write(buf)
				buf = buf[:0]
			}
		}
		h.Write(buf)
	}
	buf := make([]byte, 0, 4*len(d.Y))
	for _, y := range d.Y {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(y))
	}
	h.Write(buf)
	return hex.EncodeToString(h.Sum(nil))
}

func nativeLittleEndian() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}

// NonFiniteError reports weights that are NaN or infinite. It wraps
// ErrDiverged: that is how they come to be.
type NonFiniteError struct {
	Tensor string // the first tensor that has any
	Count  int    // non-finite values in it
	Size   int    // its values
	First  int    // flat index of the first
}

func (e *NonFiniteError) Error() string {
	return fmt.Sprintf("%s has %d non-finite values (NaN or Inf) of %d, the first at index %d", e.Tensor, e.Count, e.Size, e.First)
}

func (e *NonFiniteError) Unwrap() error { return ErrDiverged }

// nonFinite returns a *NonFiniteError for v, or nil when every value is
// finite.
func nonFinite(name string, v []float32) error {
	first, n := -1, 0
	for i, x := range v {
		// x-x is 0 for every finite x and NaN for NaN and the infinities:
		// one comparison per value.
		if x-x != 0 {
			if first < 0 {
				first = i
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return &NonFiniteError{Tensor: name, Count: n, Size: len(v), First: first}
}
