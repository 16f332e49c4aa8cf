package model

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Sampled approximations of NLL, the shortcuts that avoid the exact log Z
// over every answer: each training step draws S answers from a proposal
// distribution Q (shared by the batch, with replacement, seeded) and the
// loss of a row looks only at its label y and those samples. With E_c =
// -(h w_c + b_c) and the log-Q correction o_c = -beta E_c - log(S Q(c)):
//
//   - sampled softmax (Jean et al. 2015; TensorFlow's
//     sampled_softmax_loss): the NLL over the candidates {y} and the
//     samples, with the corrected logits,
//     L = (1/beta) (-o_y + log(exp(o_y) + sum_j exp(o_{s_j}))),
//     dL/dE_y = 1 - p_y and dL/dE_{s_j} = -p_j, p the softmax of o over
//     the candidates;
//   - NCE (noise-contrastive estimation, Gutmann and Hyvarinen 2010; Mnih
//     and Teh 2012; TensorFlow's nce_loss): logistic regression of the
//     label against the S noise samples, the model taken as
//     self-normalized (log Z = 0), L = softplus(-o_y) + sum_j
//     softplus(o_{s_j}), dL/dE_y = beta sigmoid(-o_y), dL/dE_{s_j} = -beta
//     sigmoid(o_{s_j}).
//
// A sample equal to the row's label (an accidental hit) is left out of
// that row's loss, as TensorFlow's remove_accidental_hits does. Duplicate
// samples are separate terms.
//
// How wrong the shortcut is, measured: SampledHead also returns, per row,
// the importance-sampling estimate of log Z from the same samples,
// log((1/S) sum_j exp(-beta E_{s_j}) / Q(s_j)), and the trainer's
// evaluation reports it next to the exact log Z (EvalResult.LogZAudit).

// SampledKind selects a sampled loss; the zero value is none (exact).
type SampledKind int

const (
	SampledNone SampledKind = iota
	SampledSoftmax
	NCE
)

var sampledNames = [...]string{SampledNone: "none", SampledSoftmax: "softmax", NCE: "nce"}

func (k SampledKind) String() string {
	if k >= 0 && int(k) < len(sampledNames) {
		return sampledNames[k]
	}
	return fmt.Sprintf("SampledKind(%d)", int(k))
}

// ParseSampledKind returns the kind named "none", "softmax" or "nce".
func ParseSampledKind(s string) (SampledKind, error) {
	for i, n := range sampledNames {
		if strings.EqualFold(strings.TrimSpace(s), n) {
			return SampledKind(i), nil
		}
	}
	return 0, fmt.Errorf("unknown sampled loss %q (valid: %s)", s, strings.Join(sampledNames[:], ", "))
}

// Proposals name the proposal distributions Q.
const (
	ProposalUnigram = "unigram" // the training labels' frequencies to the power 3/4 (word2vec's), plus one
	ProposalUniform = "uniform"
)

// SampledConfig configures a sampled loss (Config.Sampled). The zero value
// trains with the exact loss.
type SampledConfig struct {
	Kind     SampledKind
	Samples  int    // S, shared by a batch, >= 1
	Proposal string // ProposalUnigram (default when empty) or ProposalUniform
}

// Validate reports the first invalid setting.
func (s SampledConfig) Validate() error {
	switch {
	case s.Kind == SampledNone:
		return nil
	case s.Kind != SampledSoftmax && s.Kind != NCE:
		return fmt.Errorf("unknown sampled loss %d (valid: %s)", int(s.Kind), strings.Join(sampledNames[:], ", "))
	case s.Samples < 1:
		return fmt.Errorf("a sampled loss needs >= 1 samples per step, got %d", s.Samples)
	case s.Proposal != "" && s.Proposal != ProposalUnigram && s.Proposal != ProposalUniform:
		return fmt.Errorf("unknown proposal %q (valid: %s, %s)", s.Proposal, ProposalUnigram, ProposalUniform)
	}
	return nil
}

// SampledOps is the optional Backend capability of the sampled losses
// (the cpu backend has it; a GPU implementation is owed). For hidden rows h
// (B x D), weights w (K x D), bias (1 x K), labels (B; IgnoreLabel rows get
// loss 0 and no gradient), the S samples (each in [0, K)) and logQ (1 x K,
// log Q(c) of the proposal for every answer), it writes stats (B x
// NumStats, EnergyLoss's columns: StatLoss the row's sampled loss,
// StatLogZ the importance-sampling estimate of log Z, StatCorrect E_C,
// StatOffending the smallest energy among the row's samples other than its
// label, +Inf if none; loss, E_C and E_I 0 for an ignored row) and, unless
// dw is nil, overwrites dw (K x D), db (1 x K) and dh (B x D; may be nil)
// with the gradients of gradScale * sum_i L_i, summed in a fixed order
// (deterministic). Only the labels' and samples' rows of dw and db are
// nonzero.
type SampledOps interface {
	SampledHead(kind SampledKind, h, w, bias Mat, labels, samples Ints, logQ Mat, beta float64, gradScale float32,
		stats, dh, dw, db Mat) error
}

// Proposal is a sampling distribution over K answers, drawn from in O(1)
// by Walker's alias method.
type Proposal struct {
	LogQ  []float32 // log Q(c), for SampledOps
	prob  []float64 // alias tables
	alias []int32
}

// NewProposal builds ProposalUniform, or ProposalUnigram from the label
// counts of labels (every answer gets one more, so Q > 0 everywhere).
func NewProposal(kind string, k int, labels []int32) (*Proposal, error) {
	if k < 1 {
		return nil, fmt.Errorf("proposal over %d answers", k)
	}
	w := make([]float64, k)
	switch kind {
	case ProposalUniform:
		for i := range w {
			w[i] = 1
		}
	case ProposalUnigram, "":
		counts := make([]float64, k)
		for _, y := range labels {
			if y >= 0 && int(y) < k {
				counts[y]++
			}
		}
		for i, c := range counts {
			w[i] = math.Pow(c+1, 0.75)
		}
	default:
		return nil, fmt.Errorf("unknown proposal %q (valid: %s, %s)", kind, ProposalUnigram, ProposalUniform)
	}
	var total float64
	for _, x := range w {
		total += x
	}
	p := &Proposal{LogQ: make([]float32, k), prob: make([]float64, k), alias: make([]int32, k)}
	// Walker/Vose: scaled probabilities, small and large work lists in
	// index order (deterministic tables).
	scaled := make([]float64, k)
	var small, large []int32
	for i, x := range w {
		q := x / total
		p.LogQ[i] = float32(math.Log(q))
		scaled[i] = q * float64(k)
		if scaled[i] < 1 {
			small = append(small, int32(i))
		} else {
			large = append(large, int32(i))
		}
	}
	for len(small) > 0 && len(large) > 0 {
		s, l := small[len(small)-1], large[len(large)-1]
		small, large = small[:len(small)-1], large[:len(large)-1]
		p.prob[s], p.alias[s] = scaled[s], l
		scaled[l] -= 1 - scaled[s]
		if scaled[l] < 1 {
			small = append(small, l)
		} else {
			large = append(large, l)
		}
	}
	for _, i := range slices.Concat(small, large) {
		p.prob[i], p.alias[i] = 1, i
	}
	return p, nil
}

// Draw fills out with samples from the proposal.
func (p *Proposal) Draw(rng *rand.Rand, out []int32) {
	k := len(p.prob)
	for i := range out {
		c := rng.IntN(k)
		if rng.Float64() < p.prob[c] {
			out[i] = int32(c)
		} else {
			out[i] = p.alias[c]
		}
	}
}
