#!/usr/bin/env python3
"""Writes the corrupt and tiny IDX fixtures used by dataset/ tests.

Written in Python, independently of dataset.WriteIDX, so that the Go reader
is checked against a second encoder. Run from this directory:
python3 make_fixtures.py. Output is deterministic (gzip mtime 0).
"""
import gzip, os, struct

def idx(type_code, dims, payload):
    return bytes([0, 0, type_code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload

def gz(data):
    return gzip.compress(data, mtime=0)

def write(name, data):
    with open(name, "wb") as f:
        f.write(data)

# Header says 60000 labels, the stream holds 59000.
write("truncated-labels-idx1-ubyte.gz", gz(idx(0x08, [60000], bytes(i % 10 for i in range(59000)))))
# Same, uncompressed.
write("truncated-labels-idx1-ubyte", idx(0x08, [60000], bytes(i % 10 for i in range(59000))))
# Header claims 4294967295 x 28 x 28 images (~3 TB) over 10 bytes of data.
write("lying-images-idx3-ubyte.gz", gz(idx(0x08, [0xFFFFFFFF, 28, 28], bytes(10))))
# Header claims 1e9 x 28 x 28 images over 16 bytes, plain.
write("lying-images-idx3-ubyte", idx(0x08, [1000000000, 28, 28], bytes(16)))
# Header claims 2^29 float64 values (4 GiB, under the reader's limit) over a
# 1 KiB stream: the reader must notice the truncation without allocating it.
write("lying-floats-idx1-double.gz", gz(idx(0x0E, [1 << 29], bytes(1024))))
# A zip file's magic.
write("bad-magic-idx1-ubyte", b"PK\x03\x04" + bytes(12))
# Unknown element type 0x0A.
write("bad-type-idx1-ubyte", idx(0x0A, [3], bytes(3)))
# 5 labels declared, 7 present.
write("trailing-labels-idx1-ubyte", idx(0x08, [5], bytes([1, 2, 3, 4, 5, 6, 7])))
# Valid gzip framing with a corrupted CRC32 in the trailer.
good = bytearray(gz(idx(0x08, [5], bytes([1, 2, 3, 4, 5]))))
good[-8] ^= 0xFF
write("bad-crc-labels-idx1-ubyte.gz", bytes(good))
# Header cut inside the dimension list.
write("short-header-idx3-ubyte", bytes([0, 0, 8, 3, 0, 0]))
write("empty-idx1-ubyte", b"")

# tiny/: a valid MNIST-style directory, 7 train and 3 test images of 2x3,
# pixel j of image i = (i*7 + j*31) % 256, label i = (i*3) % 4; plain and
# gzip files mixed, to check both paths and the name search.
os.makedirs("tiny", exist_ok=True)
for f in os.listdir("tiny"):
    os.remove(os.path.join("tiny", f))
def images(n, off):
    return idx(0x08, [n, 2, 3], bytes(((i + off) * 7 + j * 31) % 256 for i in range(n) for j in range(6)))
def labels(n, off):
    return idx(0x08, [n], bytes(((i + off) * 3) % 4 for i in range(n)))
write("tiny/train-images-idx3-ubyte.gz", gz(images(7, 0)))
write("tiny/train-labels-idx1-ubyte", labels(7, 0))
write("tiny/t10k-images-idx3-ubyte", images(3, 7))
write("tiny/t10k-labels-idx1-ubyte.gz", gz(labels(3, 7)))

# mismatch/: like tiny, but the training labels hold 6 entries for 7 images.
os.makedirs("mismatch", exist_ok=True)
write("mismatch/train-images-idx3-ubyte.gz", gz(images(7, 0)))
write("mismatch/train-labels-idx1-ubyte.gz", gz(labels(6, 0)))
write("mismatch/t10k-images-idx3-ubyte.gz", gz(images(3, 7)))
write("mismatch/t10k-labels-idx1-ubyte.gz", gz(labels(3, 7)))
