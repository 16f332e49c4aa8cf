package model

// Chain energies: answers that are sequences (see chain.go for the model).
//
// For a sequence x_1..x_T with answers y_t in {0..K-1},
//
//	E(Y, X) = sum_t U(y_t, x_t) + sum_{t>1} P(y_{t-1}, y_t) + S(y_1) + F(y_T)
//
// with U the unary energies of the positions (from a trunk shared by all
// positions), P the K x K transition energies, S the start and F the final
// energies. The K^T answers are never enumerated: log Z, the marginals, the
// argmin (Viterbi) and the most offending incorrect sequence all come from
// one dynamic program over the positions run in different semirings
// (log-sum-exp at beta, min, 2-best). docs/SEQUENCE.md has the mathematics.

// Chain is a batch of sequences on a Backend, in the packed layout every
// ChainOps method takes:
//
//   - U (R x K) holds the unary energies of all positions: sequence b is
//     the rows Offsets[b] .. Offsets[b+1]-1, position t of it the row
//     Offsets[b]+t. Rows not covered by any sequence (padding) are allowed
//     and ignored: their outputs are zero (gradients, marginals) or
//     IgnoreLabel (paths).
//   - P (K x K) is row-major, P[j*K+k] = P(y_{t-1} = j, y_t = k).
//   - Start and Final are 1 x K.
//   - Offsets has B+1 entries, 0 <= Offsets[0] <= Offsets[1] <= ... <=
//     Offsets[B] <= R. A sequence of length 0 is allowed (a padding
//     sequence): it has no positions and is ignored (loss, statistics and
//     gradients zero, log Z = 0).
type Chain struct {
	U            Mat
	P            Mat
	Start, Final Mat
	Offsets      Ints
}

// ChainGrads receives the gradients of the chain's shared factors, summed
// over the batch's sequences: P is K x K, Start and Final 1 x K.
type ChainGrads struct {
	P, Start, Final Mat
}

// ChainOps is an optional Backend capability: the dynamic programs of
// chain energies. A ChainModel needs it (cpu and device implement it; the
// cpu one, in float64, is the reference of model/backendtest's chain suite).
//
// Ties: the Viterbi path and the most offending incorrect sequence break
// exact ties of energy towards the sequence with the lowest y_T, then the
// lowest y_{T-1}, and so on: the lowest index when a sequence is numbered
// sum_t y_t K^(t-1) (y_1 fastest), so that enumerating the K^T sequences
// in that order and taking ties to the lowest index, as EnergyLoss does,
// gives the same answers. Path energies are accumulated along the path in
// position order, ((S + U_1) + P_12) + U_2 ..., + F.
//
// Every method checks its arguments (shapes, offsets, labels) before
// writing anything; outputs are overwritten, never read. Reductions run in
// a fixed order: the same inputs give bitwise the same outputs.
type ChainOps interface {
	// ChainLoss is the chain's fused energy-loss operation, the analogue of
	// Backend.EnergyLoss with sequences as the answers. labels (R) holds
	// Y_i position by position; a sequence whose positions are all
	// IgnoreLabel is ignored (loss 0, E_C = E_I = 0, zero gradient; still
	// log Z and its Viterbi path), one with some but not all ignored is an
	// error, and so is a label outside [0, K) (padding rows may hold any
	// label). For every sequence b it computes log Z at loss.Beta, E_C =
	// E(Y_i), the argmin (Viterbi) and E_I = min_{Y != Y_i} E(Y) (the
	// argmin when that is not Y_i, else the second-best sequence; +Inf when
	// K == 1), then loss, and writes:
	//
	//	stats (B x NumStats)  as EnergyLoss: loss, log Z, E_C, E_I
	//	path (R)              the Viterbi sequence, position by position
	//	c.U                   overwritten with gradScale * dL/dU
	//	g (all three or none) gradScale * sum_b dL/d(P, Start, Final)
	//
	// The gradients: dL/dE(Y) = a 1[Y = Y_i] + b 1[Y = Ybar] + c P(Y|X),
	// with (a, b, c) from Loss.Terms and Ybar the most offending sequence
	// (the argmin for the perceptron), reaches U, P, S, F through the
	// indicator counts of Y_i and Ybar and, for c != 0 (NLL, MEE), through
	// the marginals P(y_t = k | X) and the pairwise marginals P(y_{t-1} =
	// j, y_t = k | X).
	ChainLoss(c Chain, labels Ints, loss Loss, gradScale float32, stats Mat, path Ints, g ChainGrads) error
	// ChainMarginals runs forward-backward in the log semiring at beta:
	// logZ (B x 1), marg (R x K) = P(y_t = k | X) of each position, and,
	// when pair is not nil, pair (K x K) = sum over the sequences and
	// their transitions t > 1 of P(y_{t-1} = j, y_t = k | X).
	ChainMarginals(c Chain, beta float64, logZ, marg, pair Mat) error
	// ChainViterbi runs the min semiring: path (R) is the lowest-energy
	// sequence of each sequence (ties as above), energy (B x 1) its energy.
	ChainViterbi(c Chain, path Ints, energy Mat) error
}
