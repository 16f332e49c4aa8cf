package kernels

import _ "embed"

// Fatbin is kernels/gputrain.fatbin: every kernel of kernels/*.cu compiled
// by scripts/build-kernels.sh into one CUDA fat binary, ready for
// cuModuleLoadData. Rebuild it after editing a kernel source (CI checks that
// it matches the sources with `scripts/build-kernels.sh --check`).
//
//go:embed gputrain.fatbin
var Fatbin []byte
