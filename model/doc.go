// Package model holds gputrain's energy-based models, the ten losses of
// LeCun et al.'s "A Tutorial on Energy-Based Learning", optimizers and the
// training loop. It knows nothing about gonum or CUDA: it computes through a
// Backend, an interface it defines itself, which cpu.Backend (the reference)
// and device.Backend (GPU kernels) implement.
package model
