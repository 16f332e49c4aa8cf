package cpu

import (
	"testing"

	"github.com/gputrain/gputrain/model"
)

// BenchmarkGemmPrecision measures GemmPrecision on the MLP's largest
// products in every precision: tf32 and bf16 round copies of both operands
// (a pass over A and B, then the float32 GEMM), 3xtf32 splits them and runs
// three GEMMs. The rate counts the product's 2mnk FLOPs once.
func BenchmarkGemmPrecision(b *testing.B) {
	be := New()
	defer be.Close()
	r := newRand(3)
	for _, s := range gemmShapes[:2] {
		for _, p := range []model.Precision{model.FP32, model.TF32, model.BF16, model.TF32x3} {
			b.Run(s.name+"/"+p.String(), func(b *testing.B) {
				ar, ac := s.m, s.k
				if s.tA {
					ar, ac = ac, ar
				}
				br, bc := s.k, s.n
				if s.tB {
					br, bc = bc, br
				}
				A := upload(b, be, ar, ac, randSlice(r, ar*ac, -1, 1))
				B := upload(b, be, br, bc, randSlice(r, br*bc, -1, 1))
				C := upload(b, be, s.m, s.n, randSlice(r, s.m*s.n, -1, 1))
				b.ResetTimer()
				for b.Loop() {
					if err := be.GemmPrecision(p, s.tA, s.tB, 1, A, B, 0, C); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(2*float64(s.m*s.n*s.k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// BenchmarkRound measures the operand roundings themselves (1 Mi
// elements, the backend's threads).
func BenchmarkRound(b *testing.B) {
	be := New()
	defer be.Close()
	x := randSlice(newRand(4), 1<<20, -3, 3)
	y, z := make([]float32, len(x)), make([]float32, len(x))
	for _, p := range []model.Precision{model.TF32, model.BF16} {
		b.Run(p.String(), func(b *testing.B) {
			for b.Loop() {
				be.roundInto(p, y, x)
			}
			b.ReportMetric(float64(len(x))*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
		})
	}
	b.Run("3xtf32-split", func(b *testing.B) {
		for b.Loop() {
			be.splitInto(y, z, x)
		}
		b.ReportMetric(float64(len(x))*float64(b.N)/b.Elapsed().Seconds()/1e9, "Gelem/s")
	})
}
