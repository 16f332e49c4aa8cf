package model

// StepForTest runs one training step on the global batch rows (this rank's
// shard of it), for the distributed tests that compare gradients.
func (t *Trainer) StepForTest(rows []int32) (float64, error) {
	return t.step(rows, make([]float32, NumStats))
}
