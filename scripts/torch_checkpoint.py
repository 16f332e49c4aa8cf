#!/usr/bin/env python3
"""Load a gputrain checkpoint's model into PyTorch: torch.nn.Sequential of
torch.nn.Linear layers (and ReLU or Tanh between them), preceded by the
checkpoint's standardization, whose output is the score of every answer:
score = -E(y, x), so the answer is the argmax of the scores, exactly as
gputrain's is the argmin of the energies.

    python3 scripts/torch_checkpoint.py CKPT                 # print the model
    python3 scripts/torch_checkpoint.py CKPT x1 x2 ...       # scores of one raw input

From Python:

    import sys; sys.path.insert(0, "scripts")
    from torch_checkpoint import load_sequential
    net, meta = load_sequential("gputrain.safetensors")
    scores = net(torch.tensor([[5.1, 3.5, 1.4, 0.2]]))   # raw features, as in the data file
    answer = scores.argmax(dim=1)                         # meta["class_names"] names it

The tensors are read without a copy: the file is memory-mapped and each
tensor viewed with torch.frombuffer (gputrain aligns every tensor to its
element size, as Hugging Face's writer does), then copied once into the
layers. The checksums in the metadata are verified first (hashlib). Dense
models only: a joint model (metadata "vars") has its own energy, documented
in its "energy" metadata. Needs PyTorch (Debian: python3-torch) and nothing
else; docs/CHECKPOINTS.md describes the format.
"""
import hashlib
import json
import mmap
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}


class Standardize(torch.nn.Module):
    """x' = (x - mean) / std, the normalization the model was trained with."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)

    def forward(self, x):
        return (x - self.mean) / self.std


def read(path):
    """Returns (metadata, {name: tensor}); every tensor views the mapped file."""
    f = open(path, "rb")
    buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # copy-on-write: writable views, no copy made
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(bytes(buf[8:8 + n]).decode("utf-8"))
    meta = header.pop("__metadata__", {})
    start = 8 + n
    sums = json.loads(meta.get("sha256", "{}"))
    h = hashlib.sha256()
    for k in sorted((k for k in meta if k != "sha256"), key=lambda k: k.encode("utf-8")):
        h.update(k.encode("utf-8") + b"\0" + meta[k].encode("utf-8") + b"\0")
    digest = h.hexdigest()
    if sums and sums.get("__metadata__") != digest:
        raise ValueError("%s: the metadata do not match their checksum" % path)
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        data = memoryview(buf)[start + begin:start + end]
        if sums and hashlib.sha256(data).hexdigest() != sums.get(name):
            raise ValueError("%s: tensor %s does not match its checksum" % (path, name))
        dtype = DTYPES[e["dtype"]]
        count = 1
        for d in e["shape"]:
            count *= d
        if count == 0:
            tensors[name] = torch.zeros(e["shape"], dtype=dtype)
            continue
        t = torch.frombuffer(buf, dtype=dtype, count=count, offset=start + begin)
        tensors[name] = t.reshape(e["shape"])
    return meta, tensors


def load_sequential(path):
    """Returns (torch.nn.Sequential, metadata) computing the scores -E(y, x)."""
    meta, tensors = read(path)
    if "vars" in meta:
        raise ValueError("%s is a joint model: see its \"energy\" metadata" % path)
    layers = []
    if meta.get("normalization") == "standardize":
        layers.append(Standardize(tensors["normalizer.mean"].clone(), tensors["normalizer.std"].clone()))
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}
    activation = act.get(meta["model"].rsplit(":", 1)[-1])
    count = 0
    while "layers.%d.weight" % count in tensors:
        count += 1
    for l in range(count):
        w, b = tensors["layers.%d.weight" % l], tensors["layers.%d.bias" % l]
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers.append(lin)
        if l < count - 1:
            layers.append(activation())
    meta = dict(meta)
    meta["class_names"] = json.loads(meta.get("class_names", "[]"))
    return torch.nn.Sequential(*layers).eval(), meta


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    try:
        net, meta = load_sequential(argv[1])
    except (OSError, ValueError, KeyError) as e:
        sys.stderr.write("torch_checkpoint: %s\n" % e)
        return 1
    if len(argv) == 2:
        print(net)
        return 0
    x = torch.tensor([[float(v) for v in argv[2:]]])
    with torch.no_grad():
        scores = net(x)[0]
    for y, s in enumerate(scores.tolist()):
        print("%d %.9g" % (y, s))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
