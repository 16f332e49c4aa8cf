package model

import (
	"fmt"
	"math"
	"strings"
)

// Precision is how a dense layer's matrix products treat their operands.
// Every mode accumulates in float32 (or better) and keeps float32 master
// weights; only the operands that enter the products are rounded:
//
//	FP32    no rounding: the reference, and the default.
//	TF32x3  "3xTF32": each operand x is split into x_hi = tf32(x) and
//	        x_lo = tf32(x - x_hi), and A*B is taken as
//	        A_lo*B_hi + A_hi*B_lo + A_hi*B_hi (A_lo*B_lo, below float32's
//	        resolution, is dropped): float32-level accuracy on tensor cores.
//	TF32    operands rounded to TF32 (10 mantissa bits), as by PTX
//	        cvt.rna.tf32.f32: to nearest, ties away from zero.
//	BF16    operands rounded to bfloat16 (7 mantissa bits), as by PTX
//	        cvt.rn.bf16x2.f32: to nearest, ties to even.
//
// The setting reaches a backend through PrecisionOps and DenseOps, whose
// methods take it per call: it belongs to the model (Config.Precision,
// saved in checkpoints), not to the backend, so two models on one backend
// may differ. FP32 products go through Backend.Gemm and need neither.
type Precision int

const (
	FP32 Precision = iota
	TF32x3
	TF32
	BF16
)

// precisionNames are the names of --precision, in the order of the constants.
var precisionNames = []string{"fp32", "3xtf32", "tf32", "bf16"}

func (p Precision) String() string {
	if p >= 0 && int(p) < len(precisionNames) {
		return precisionNames[p]
	}
	return fmt.Sprintf("Precision(%d)", int(p))
}

// PrecisionNames lists the valid names of ParsePrecision.
func PrecisionNames() []string { return append([]string(nil), precisionNames...) }

// ParsePrecision returns the precision named s (fp32, 3xtf32, tf32, bf16;
// case does not matter).
func ParsePrecision(s string) (Precision, error) {
	for i, n := range precisionNames {
		if strings.EqualFold(s, n) {
			return Precision(i), nil
		}
	}
	return 0, fmt.Errorf("unknown precision %q (valid: %s)", s, strings.Join(precisionNames, ", "))
}

// Validate reports an unknown precision, naming the valid ones.
func (p Precision) Validate() error {
	if p < FP32 || p > BF16 {
		return fmt.Errorf("unknown precision %v (valid: %s)", p, strings.Join(precisionNames, ", "))
	}
	return nil
}

// PrecisionOps is an optional Backend capability: GEMMs whose operands are
// rounded as Precision says. A model with a precision other than FP32
// needs it (NewTrainer and Checkpoint.NewModel report its absence).
type PrecisionOps interface {
	// GemmPrecision is Backend.Gemm with op(A) and op(B) rounded elementwise
	// as p says before they are multiplied (TF32x3: the three-product
	// split); C, alpha and beta are float32 as in Gemm, and beta == 0 never
	// reads C. FP32 is exactly Gemm.
	GemmPrecision(p Precision, transA, transB bool, alpha float32, a, b Mat, beta float32, c Mat) error
}

// GemmAt runs C = alpha*op(A)*op(B) + beta*C on b at precision p: FP32
// through Backend.Gemm, the others through PrecisionOps.
func GemmAt(b Backend, p Precision, transA, transB bool, alpha float32, a, bm Mat, beta float32, c Mat) error {
	if p == FP32 {
		return b.Gemm(transA, transB, alpha, a, bm, beta, c)
	}
	po, ok := b.(PrecisionOps)
	if !ok {
		return fmt.Errorf("backend %s has no %v GEMM (only fp32)", b.Name(), p)
	}
	return po.GemmPrecision(p, transA, transB, alpha, a, bm, beta, c)
}

// CheckPrecision reports whether b can run products at precision p.
func CheckPrecision(b Backend, p Precision) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p == FP32 {
		return nil
	}
	if _, ok := b.(PrecisionOps); !ok {
		return fmt.Errorf("precision %v: backend %s computes only fp32 products (valid here: fp32)", p, b.Name())
	}
	return nil
}

// RoundTF32 rounds x to TF32 as PTX cvt.rna.tf32.f32 does: the nearest
// value with 10 explicit mantissa bits, ties away from zero, the result
// held in a float32 whose low 13 bits are zero. Infinities stay; a NaN
// stays a NaN; a finite value just below the largest float32 may round to
// infinity, as on the GPU (no .satfinite).
func RoundTF32(x float32) float32 {
	u := math.Float32bits(x)
	if u&0x7f800000 == 0x7f800000 { // Inf or NaN
		return x
	}
	// Adding half of the dropped part to the magnitude bits rounds the
	// magnitude to nearest with ties up, i.e. away from zero; a carry into
	// the exponent is the correct result (the next binade, or Inf).
	return math.Float32frombits((u + 0x1000) &^ 0x1fff)
}

// RoundBF16 rounds x to bfloat16 as PTX cvt.rn.bf16x2.f32 does: to
// nearest, ties to even, the result held in a float32 whose low 16 bits are
// zero. Infinities stay; a NaN stays a NaN.
func RoundBF16(x float32) float32 {
	u := math.Float32bits(x)
	if u&0x7f800000 == 0x7f800000 {
		return x
	}
	return math.Float32frombits((u + 0x7fff + (u>>16)&1) &^ 0xffff)
}

// SplitTF32 returns the 3xTF32 split of x: hi = RoundTF32(x) and
// lo = RoundTF32(x - hi) (x - hi is exact in float32).
func SplitTF32(x float32) (hi, lo float32) {
	hi = RoundTF32(x)
	if math.IsInf(float64(hi), 0) || hi != hi {
		return hi, 0
	}
	return hi, RoundTF32(x - hi)
}

// RoundOperand rounds one GEMM operand element as p does (FP32 and TF32x3
// leave it: TF32x3 splits instead, see SplitTF32).
func (p Precision) RoundOperand(x float32) float32 {
	switch p {
	case TF32:
		return RoundTF32(x)
	case BF16:
		return RoundBF16(x)
	}
	return x
}

// precisionSetter is implemented by the models whose dense products take a
// precision (the dense model; a joint model through its trunk and heads).
type precisionSetter interface{ setPrecision(Precision) }

func (m *dense) setPrecision(p Precision) { m.prec = p }

func (m *JointModel) setPrecision(p Precision) { m.heads.setPrecision(p) }

func (m *ChainModel) setPrecision(p Precision) { m.trunk.setPrecision(p) }

// SetPrecision sets the precision of the products of a model built by
// NewEnergyModel or NewJointModel (NewTrainer and Checkpoint.NewModel take
// it from Config.Precision), checking that its backend has them.
func SetPrecision(m EnergyModel, b Backend, p Precision) error {
	if err := CheckPrecision(b, p); err != nil {
		return err
	}
	s, ok := m.(precisionSetter)
	if !ok {
		if p == FP32 {
			return nil
		}
		return fmt.Errorf("model %v has no %v products", m, p)
	}
	s.setPrecision(p)
	return nil
}

// withPrecision returns a function that sets the precision of the model a
// constructor returned (closing the model if it cannot take it).
func withPrecision[M EnergyModel](m M, err error) func(Precision) (EnergyModel, error) {
	return func(p Precision) (EnergyModel, error) {
		if err != nil {
			return nil, err
		}
		if s, ok := any(m).(precisionSetter); ok {
			s.setPrecision(p)
			return m, nil
		}
		if p != FP32 {
			_ = m.Free()
			return nil, fmt.Errorf("model %v has no %v products", m, p)
		}
		return m, nil
	}
}
