#!/usr/bin/env python3
"""Read a gputrain checkpoint (safetensors) with the Python standard library only.

    python3 scripts/read_checkpoint.py CKPT                 # metadata, then every tensor: name dtype shape
    python3 scripts/read_checkpoint.py --dump NAME CKPT     # also print tensor NAME's values
    python3 scripts/read_checkpoint.py --predict CKPT x1 x2 ...   # energies of one raw input

The format is documented in docs/CHECKPOINTS.md. A safetensors file is an
8-byte little-endian header length N, N bytes of JSON (tensor name ->
dtype, shape, [begin, end) byte offsets into the data that follows;
"__metadata__" -> string map), then the tensor data, row-major little-endian.
No numpy: this file is the proof that a checkpoint needs no Go to be read.
"""
import json
import math
import struct
import sys

FORMATS = {"F64": ("d", 8), "F32": ("f", 4), "I64": ("q", 8), "I32": ("i", 4), "U8": ("B", 1)}


def load(path):
    """Returns (metadata dict, {name: (dtype, shape, flat list of values)})."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError("%s: header length %d exceeds the file" % (path, n))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        code, size = FORMATS[e["dtype"]]
        begin, end = e["data_offsets"]
        count = 1
        for d in e["shape"]:
            count *= d
        if end - begin != count * size or end > len(data):
            raise ValueError("%s: tensor %s has bad offsets" % (path, name))
        values = list(struct.unpack("<%d%s" % (count, code), data[begin:end]))
        tensors[name] = (e["dtype"], e["shape"], values)
    return meta, tensors


def energies(meta, tensors, x):
    """E(y, x) for every answer y of one raw input x, as the model computes it."""
    if meta.get("normalization") == "standardize":
        mean, std = tensors["normalizer.mean"][2], tensors["normalizer.std"][2]
        x = [(v - m) / s for v, m, s in zip(x, mean, std)]
    act = meta["model"].split(":")[-1] if meta["model"] != "linear" else None
    layers = 0
    while "layers.%d.weight" % layers in tensors:
        layers += 1
    h = x
    for l in range(layers):
        _, (rows, cols), w = tensors["layers.%d.weight" % l]
        b = tensors["layers.%d.bias" % l][2]
        out = [sum(w[r * cols + c] * h[c] for c in range(cols)) + b[r] for r in range(rows)]
        if l < layers - 1:
            out = [max(0.0, v) for v in out] if act == "relu" else [math.tanh(v) for v in out]
        h = out
    return [-s for s in h]


def main(argv):
    dump, predict = [], False
    args = argv[1:]
    while args and args[0].startswith("--"):
        if args[0] == "--dump" and len(args) > 1:
            dump.append(args[1])
            args = args[2:]
        elif args[0] == "--predict":
            predict = True
            args = args[1:]
        else:
            break
    if not args or (not predict and len(args) != 1):
        sys.stderr.write(__doc__)
        return 2
    path = args[0]
    try:
        meta, tensors = load(path)
    except (OSError, ValueError, KeyError) as e:
        sys.stderr.write("read_checkpoint: %s\n" % e)
        return 2
    if predict:
        x = [float(v) for v in args[1:]]
        e = energies(meta, tensors, x)
        beta = float(meta["beta"])
        lo = min(e)
        z = sum(math.exp(-beta * (v - lo)) for v in e)
        for y, v in enumerate(e):
            print("%d %.6g %.6g" % (y, v, math.exp(-beta * (v - lo)) / z))
        return 0
    print("metadata:")
    for k in sorted(meta):
        print("  %s = %s" % (k, meta[k]))
    print("tensors:")
    for name in sorted(tensors):
        dtype, shape, _ = tensors[name]
        print("%s %s [%s]" % (name, dtype, ",".join(str(d) for d in shape)))
    for name in dump:
        if name not in tensors:
            sys.stderr.write("read_checkpoint: no tensor %s\n" % name)
            return 2
        print("%s = %s" % (name, " ".join("%.9g" % v for v in tensors[name][2])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
