package model

import "fmt"

// Mat is a row-major float32 matrix that lives on a Backend. Its storage is
// owned by the backend that allocated it; only that backend may use it.
type Mat interface {
	Rows() int
	Cols() int
}

// Ints is a vector of int32 that lives on a Backend: labels, argmin answers,
// batch indices.
type Ints interface {
	Len() int
}

// Activation is an elementwise nonlinearity applied in place.
type Activation int

const (
	ReLU Activation = iota // max(0, x); derivative from the output: 1[y > 0]
	Tanh                   // tanh(x); derivative from the output: 1 - y^2
)

func (a Activation) String() string {
	switch a {
	case ReLU:
		return "relu"
	case Tanh:
		return "tanh"
	case Linear:
		return "linear"
	}
	return fmt.Sprintf("Activation(%d)", int(a))
}

// Columns of the per-row statistics matrix (B x NumStats) written by
// Backend.EnergyLoss.
const (
	StatLoss      = iota // the loss of the row (0 for ignored rows)
	StatLogZ             // log Z = log sum_y exp(-beta E_y) (not divided by beta)
	StatCorrect          // E_C = E(Y_i); 0 for ignored rows
	StatOffending        // E_I = min_{y != Y_i} E_y, ties to the lowest y; +Inf when K == 1; 0 for ignored rows
	NumStats
)

// IgnoreLabel marks a row whose loss and gradient are zero.
const IgnoreLabel = -1

// Backend is everything model/ needs from a compute backend: float32
// matrices that live on the backend, the few dense operations of an energy
// model, the fused energy-loss operation and optimizer steps. cpu.Backend is
// the reference; device.Backend runs the same operations as GPU kernels.
//
// Every method checks its arguments (shapes, handles of another backend)
// before doing any work and reports misuse and runtime failures as errors.
// Implementations are not safe for concurrent use by several goroutines.
type Backend interface {
	// Name identifies the backend ("cpu", "device/emu", "device/cuda").
	Name() string

	// Alloc returns a rows x cols matrix; its contents are unspecified.
	Alloc(rows, cols int) (Mat, error)
	// AllocInts returns an int32 vector of length n; contents unspecified.
	AllocInts(n int) (Ints, error)
	// Upload copies src (row-major, len rows*cols) into dst.
	Upload(dst Mat, src []float32) error
	// Download copies src into dst (len rows*cols).
	Download(dst []float32, src Mat) error
	UploadInts(dst Ints, src []int32) error
	DownloadInts(dst []int32, src Ints) error
	// Free releases a matrix or vector (a Mat or an Ints). Using it afterwards is an error.
	Free(x any) error
	// Close releases everything the backend holds.
	Close() error

	// Gemm computes C = alpha*op(A)*op(B) + beta*C, where op(X) is X or X^T as
	// transA/transB say. beta == 0 means C is only written (never read), so
	// NaNs in C do not propagate.
	Gemm(transA, transB bool, alpha float32, a, b Mat, beta float32, c Mat) error
	// AddRowVector adds the 1 x cols vector v to every row of m, scaled: m[i,j] += alpha*v[j].
	AddRowVector(m Mat, alpha float32, v Mat) error
	// ColumnSums sets dst[0,j] = alpha*sum_i src[i,j] + beta*dst[0,j] (dst is 1 x cols).
	ColumnSums(dst Mat, alpha float32, src Mat, beta float32) error
	// Activate applies act to m in place.
	Activate(act Activation, m Mat) error
	// ActivationGrad multiplies grad in place by act'(.), computed from the
	// activation's output out (same shape as grad).
	ActivationGrad(act Activation, grad, out Mat) error

	// EnergyLoss is the fused energy-loss operation. For every row i of the
	// energies E (B x K) with label Y_i = labels[i] it computes, in one pass,
	// log Z at loss.Beta, E_C, E_I and the argmin answer, then the loss, and
	// writes into stats (B x NumStats) and argmin (B). It overwrites E with
	// gradScale * dL/dE. Rows labelled IgnoreLabel get loss 0, E_C = E_I = 0,
	// a zero gradient, and still their log Z and argmin. A label outside
	// [0, K) other than IgnoreLabel is an error (reported before any write).
	EnergyLoss(e Mat, labels Ints, loss Loss, gradScale float32, stats Mat, argmin Ints) error
	// ArgminRows writes the index of the smallest entry of each row of e
	// (ties to the lowest index) into out.
	ArgminRows(e Mat, out Ints) error

	// GatherRows sets dst row r to src row idx[r] (dst: len(idx) x src.Cols()).
	GatherRows(dst, src Mat, idx Ints) error
	// GatherInts sets dst[r] = src[idx[r]].
	GatherInts(dst, src, idx Ints) error

	// Optimizer steps update w in place from its gradient g. Weight decay is
	// decoupled (AdamW style): w -= lr*weightDecay*w, applied before the
	// gradient step, from the same w the gradient was taken at.
	SGDStep(w, g Mat, lr, weightDecay float32) error
	// MomentumStep: v = mu*v + g; w -= lr*v (and decay).
	MomentumStep(w, g, v Mat, lr, mu, weightDecay float32) error
	// AdamStep: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
	// w -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps) (and decay); t >= 1.
	AdamStep(w, g, m, v Mat, lr, beta1, beta2, eps, weightDecay float32, t int) error
}
