package model_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// TestRowGradientMatchesEnergyLoss checks the host-side gradient magnitude
// behind EvalResult.Stalled against the backend's EnergyLoss gradient for
// every loss, on energies spread widely enough to reach every regime
// (inactive hinges, saturated MCE and LVQ2, E_I > 1 for LVQ2).
func TestRowGradientMatchesEnergyLoss(t *testing.T) {
	const b, k = 257, 7
	be := cpu.New()
	defer be.Close()
	rng := rand.New(rand.NewPCG(21, 22))
	for _, kind := range model.LossKinds() {
		loss := model.Loss{Kind: kind, Beta: 0.7, Margin: 1.5, Gamma: 0.8, Delta: 1.3}
		eh := make([]float32, b*k)
		for i := range eh {
			eh[i] = float32(rng.NormFloat64() * 4)
		}
		ys := make([]int32, b)
		for i := range ys {
			ys[i] = int32(rng.IntN(k))
		}
		e := mustMat(t, be, b, k, eh)
		lab, _ := be.AllocInts(b)
		must(t, be.UploadInts(lab, ys))
		stats := mustMat(t, be, b, model.NumStats, nanSlice(b*model.NumStats))
		argmin, _ := be.AllocInts(b)
		must(t, be.EnergyLoss(e, lab, loss, 1, stats, argmin))
		g := make([]float32, b*k)
		must(t, be.Download(g, e))
		st := make([]float32, b*model.NumStats)
		must(t, be.Download(st, stats))
		am := make([]int32, b)
		must(t, be.DownloadInts(am, argmin))
		zeros := 0
		for i := 0; i < b; i++ {
			y := int(ys[i])
			off := -1
			for j := 0; j < k; j++ {
				if j != y && (off < 0 || eh[i*k+j] < eh[i*k+off]) {
					off = j
				}
			}
			want := math.Max(math.Abs(float64(g[i*k+y])), math.Abs(float64(g[i*k+off])))
			s := st[i*model.NumStats : (i+1)*model.NumStats]
			got := model.RowGradient(loss, float64(s[model.StatCorrect]), float64(s[model.StatOffending]), float64(s[model.StatLogZ]), int(am[i]) != y)
			if math.Abs(got-want) > 1e-4+1e-3*want {
				t.Errorf("%v row %d: RowGradient %g, EnergyLoss %g (E_C %g, E_I %g)", loss, i, got, want, s[model.StatCorrect], s[model.StatOffending])
			}
			if want == 0 {
				zeros++
			}
		}
		t.Logf("%v: %d of %d rows without gradient", loss, zeros, b)
		_ = be.Free(e)
		_ = be.Free(stats)
	}
}
