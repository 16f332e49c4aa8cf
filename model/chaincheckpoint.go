package model

import (
	"strconv"

	"github.com/gputrain/gputrain/model/safetensors"
)

// What a checkpoint adds for a chain model (docs/CHECKPOINTS.md): metadata
// chain = "true", states (K), train_positions and seq_column (the CSV's
// sequence-id column, when trained from one); the tensors of
// ChainModel.Params, the trunk's layers.l.* then chain.transitions [K, K],
// chain.start [K] and chain.final [K]. train_rows counts the training
// sequences (the units an epoch shuffles).

// chainFormula is the "energy" metadata of a chain model.
const chainFormula = "answer Y = (y_1..y_T), y_t in [0, classes); " +
	"E(Y,X) = sum_t U(y_t,x_t) + sum_{t>1} chain.transitions[y_{t-1}, y_t] + chain.start[y_1] + chain.final[y_T]; " +
	"U(k,x) = -(layers.L.weight[k] . h(x) + layers.L.bias[k]), " + trunkFormula

// isChainVector reports whether a tensor is one of the chain's 1 x K
// vectors, stored 1-D like biases.
func isChainVector(name string) bool {
	return name == TensorName(ParamStart) || name == TensorName(ParamFinal)
}

func (t *Trainer) chainMetadata(md map[string]string, info DataInfo) {
	md["chain"] = "true"
	if info.SeqColumn != "" {
		md["seq_column"] = info.SeqColumn
	}
	md["states"] = strconv.Itoa(t.Model.Classes())
	if t.seq != nil {
		md["train_positions"] = strconv.Itoa(t.seq.train.N)
	}
}

// checkChainTensors checks the chain's own tensors for k states.
func checkChainTensors(f *safetensors.File, k int) error {
	if err := checkShape(f, TensorName(ParamTransitions), []int{k, k}); err != nil {
		return err
	}
	if err := checkShape(f, TensorName(ParamStart), []int{k}); err != nil {
		return err
	}
	return checkShape(f, TensorName(ParamFinal), []int{k})
}

// unitName names what train_rows counts.
func (t *Trainer) unitName() string {
	if t.seq != nil {
		return "sequences"
	}
	return "rows"
}
