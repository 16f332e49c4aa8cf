#!/usr/bin/env bash
# Prints the path of a libnccl.so.2 for GPUTRAIN_NCCL, or nothing. The GPU
# check uses it: the lent GPU machine has no system NCCL, but PyTorch's
# wheels depend on nvidia-nccl-cu* (site-packages/nvidia/nccl/lib), and
# older ones bundle libnccl in torch/lib. comm/nccl.Open searches the usual
# site-packages itself; this also finds PyTorch wherever python3 imports it.
set -uo pipefail
if p=$(ldconfig -p 2>/dev/null | awk '/libnccl\.so\.2 / {print $NF; exit}') && [ -n "$p" ]; then
	echo "$p"
	exit 0
fi
command -v python3 >/dev/null || exit 0
python3 - <<'PY' 2>/dev/null
import glob, os, site, sys
dirs = []
try:
    dirs += site.getsitepackages() + [site.getusersitepackages()]
except Exception:
    pass
try:
    import torch
    dirs.append(os.path.dirname(os.path.dirname(torch.__file__)))
    dirs.append(os.path.join(os.path.dirname(torch.__file__), "lib"))
except Exception:
    pass
for d in dirs:
    for pat in ("nvidia/nccl/lib/libnccl.so.2", "libnccl.so.2"):
        for p in glob.glob(os.path.join(d, pat)):
            print(p)
            sys.exit(0)
PY
exit 0
