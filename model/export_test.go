package model

// RowGradient exposes rowGradient to the external tests, which check it
// against a Backend's EnergyLoss.
var RowGradient = rowGradient

// SealChecksums exposes sealChecksums, so tests can craft checkpoints whose
// only fault is the one they plant.
var SealChecksums = sealChecksums

// ObserveEarlyStop feeds epoch results to a trainer's early stopping.
func ObserveEarlyStop(cfg EarlyStop, evals []EvalResult) (best []bool, stopAt int) {
	t := &Trainer{cfg: Config{EarlyStop: cfg}}
	for i := range evals {
		r := EpochResult{Epoch: i + 1, Eval: &evals[i]}
		stop := t.observeEarlyStop(&r)
		best = append(best, r.Best)
		if stop {
			return best, i + 1
		}
	}
	return best, 0
}
