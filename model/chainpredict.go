package model

import (
	"errors"
	"fmt"
	"math"
)

// ChainPrediction is what PredictChain infers for each sequence.
type ChainPrediction struct {
	States  int
	Offsets []int // sequence s is the positions Offsets[s] .. Offsets[s+1]-1
	// Path is the Viterbi sequence, position by position: the answer
	// (ties as in ChainOps).
	Path []int32
	// Energy is E(Path, X); LogZ is log Z at beta; Prob = P(Path | X) =
	// exp(-beta Energy - LogZ).
	Energy, LogZ, Prob []float64
	// Marginals holds P(y_t = k | X) at Marginals[p*States + k] for
	// position p (see Marginal).
	Marginals []float64
}

// Marginal returns P(y = k | X), k in [0, States), of position p (a slice
// of Marginals).
func (p *ChainPrediction) Marginal(pos int) []float64 {
	return p.Marginals[pos*p.States : (pos+1)*p.States]
}

// PredictChain infers for the sequences of x (n positions x Inputs,
// row-major, sequence s the positions offsets[s] .. offsets[s+1]-1, as in
// Sequences) the Viterbi path and its energy (ChainViterbi), log Z and the
// marginals at beta (ChainMarginals), batch sequences at a time.
func PredictChain(b Backend, m *ChainModel, x []float32, offsets []int, beta float64, batch int) (*ChainPrediction, error) {
	if b == nil || m == nil {
		return nil, errors.New("PredictChain: nil backend or model")
	}
	if m.b != b {
		return nil, errors.New("PredictChain: the model lives on another backend")
	}
	d := m.Inputs()
	if len(offsets) < 2 || len(x)%d != 0 {
		return nil, fmt.Errorf("PredictChain: need at least one sequence and len(x) a multiple of %d; got %d offsets, len(x)=%d", d, len(offsets), len(x))
	}
	if batch < 1 {
		return nil, fmt.Errorf("PredictChain: batch must be >= 1, got %d", batch)
	}
	if !(beta > 0) || math.IsInf(beta, 0) {
		return nil, fmt.Errorf("PredictChain: beta must be a finite number > 0, got %v", beta)
	}
	n := len(x) / d
	// Labels are not used: any valid class will do for Sequences' checks.
	seqs := &Sequences{Data: Data{X: x, Y: make([]int32, n), N: n, D: d, Classes: m.States()}, Offsets: offsets}
	if err := seqs.Validate(); err != nil {
		return nil, fmt.Errorf("PredictChain: %w", err)
	}
	k := m.States()
	batch = min(batch, seqs.Len())
	dd, err := UploadStreamed(b, &seqs.Data)
	if err != nil {
		return nil, err
	}
	rows := longestSum(batch, seqs)
	bf, err := newSeqBuffers(b, batch, rows, d)
	if err != nil {
		return nil, fmt.Errorf("PredictChain: %w", err)
	}
	defer bf.free()
	var energy, logZ, marg Mat
	defer func() {
		for _, v := range []Mat{energy, logZ, marg} {
			if v != nil {
				_ = b.Free(v)
			}
		}
	}()
	if energy, err = b.Alloc(batch, 1); err == nil {
		if logZ, err = b.Alloc(batch, 1); err == nil {
			marg, err = b.Alloc(rows, k)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("PredictChain: %w", err)
	}
	p := &ChainPrediction{
		States: k, Offsets: append([]int(nil), offsets...), Path: make([]int32, n),
		Energy: make([]float64, seqs.Len()), LogZ: make([]float64, seqs.Len()), Prob: make([]float64, seqs.Len()),
		Marginals: make([]float64, n*k),
	}
	he, hz := make([]float32, batch), make([]float32, batch)
	hm, hp := make([]float32, rows*k), make([]int32, rows)
	ids := make([]int32, 0, batch)
	for start := 0; start < seqs.Len(); start += batch {
		end := min(start+batch, seqs.Len())
		ids = ids[:0]
		for i := start; i < end; i++ {
			ids = append(ids, int32(i))
		}
		if err := bf.load(dd, seqs, ids); err != nil {
			return nil, fmt.Errorf("PredictChain: %w", err)
		}
		u, err := m.UnaryEnergies(bf.bt.x)
		if err != nil {
			return nil, fmt.Errorf("PredictChain sequences %d..%d: %w", start, end-1, err)
		}
		c := m.Chain(u, bf.offsets)
		if err := m.ops.ChainViterbi(c, bf.path, energy); err != nil {
			return nil, fmt.Errorf("PredictChain: %w", err)
		}
		if err := m.ops.ChainMarginals(c, beta, logZ, marg, nil); err != nil {
			return nil, fmt.Errorf("PredictChain: %w", err)
		}
		for _, dl := range []struct {
			dst []float32
			src Mat
		}{{he, energy}, {hz, logZ}, {hm, marg}} {
			if err := b.Download(dl.dst, dl.src); err != nil {
				return nil, fmt.Errorf("PredictChain: %w", err)
			}
		}
		if err := b.DownloadInts(hp, bf.path); err != nil {
			return nil, fmt.Errorf("PredictChain: %w", err)
		}
		lo := offsets[start]
		hi := offsets[end]
		copy(p.Path[lo:hi], hp[:hi-lo])
		for i := range (hi - lo) * k {
			p.Marginals[lo*k+i] = float64(hm[i])
		}
		for i := start; i < end; i++ {
			e, z := float64(he[i-start]), float64(hz[i-start])
			p.Energy[i], p.LogZ[i], p.Prob[i] = e, z, math.Exp(-beta*e-z)
		}
	}
	return p, nil
}
