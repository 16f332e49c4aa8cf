package model

import (
	"math"
	"strings"
)

// MemoryEstimate returns about how many bytes a Trainer for cfg allocates
// on its backend for training data of trainRows x inputs, evalRows held-out
// rows and classes answers: the parameters with their gradients and
// optimizer state, the uploaded data sets, the batch buffers and every
// layer's activations for one batch. It is computed in float64 and
// saturates at math.MaxInt64, so sizes from flags or file headers (a
// hidden layer of 10^8 units, a batch of 2^63-1 rows) never overflow it.
// Callers compare it with the memory available before building anything.
func MemoryEstimate(cfg Config, inputs, classes, trainRows, evalRows int) int64 {
	spec, err := cfg.Spec()
	if err != nil {
		return 0
	}
	slots := map[string]float64{"sgd": 0, "momentum": 1, "adam": 2}[strings.ToLower(cfg.Optimizer.Name)]
	batch := float64(min(max(cfg.Batch, 1), max(trainRows, 1)))
	params, acts := layerSizes(spec, cfg.Vars, !cfg.NoPairwise, float64(inputs), float64(classes))
	f := 4.0                                                                              // bytes per float32
	total := params * (2 + slots) * f                                                     // value, gradient, state
	total += (float64(trainRows) + 1 + float64(evalRows) + 1) * (float64(inputs) + 1) * f // data, labels
	total += batch * (float64(inputs) + float64(NumStats) + 3) * f                        // batch rows, stats, labels
	total += batch * acts * 3 * f                                                         // activations, their gradients, scratch
	total += batch * float64(classes) * 2 * f                                             // energies and their gradient
	if total >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(total)
}

// InferenceMemory is MemoryEstimate for evaluating or predicting with a
// model in batches of batch rows (no gradients, no optimizer state, no
// uploaded data set).
func InferenceMemory(cfg Config, inputs, classes, batch int) int64 {
	spec, err := cfg.Spec()
	if err != nil {
		return 0
	}
	params, acts := layerSizes(spec, cfg.Vars, !cfg.NoPairwise, float64(inputs), float64(classes))
	b := float64(max(batch, 1))
	total := 4 * (2*params + b*(float64(inputs)+float64(NumStats)+3) + b*acts*2 + b*float64(classes)*2)
	if total >= math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(total)
}

// layerSizes returns the number of parameters of the model and the summed
// width of its layers' outputs (activations per row).
func layerSizes(spec Spec, vars []int, pairwise bool, inputs, classes float64) (params, acts float64) {
	outputs := classes
	if len(vars) > 0 {
		outputs = 0
		for i, k := range vars {
			outputs += float64(k)
			if pairwise {
				for _, k2 := range vars[i+1:] {
					params += float64(k) * float64(k2)
				}
			}
		}
		acts += classes // the joint energies
	}
	in := inputs
	for _, h := range append(append([]int(nil), spec.Hidden...), 0) {
		out := float64(h)
		if h == 0 {
			out = outputs
		}
		params += in*out + out
		acts += out
		in = out
	}
	return params, acts
}
