package model_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/gputrain/gputrain/comm"
	"github.com/gputrain/gputrain/comm/commtest"
	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/model"
)

// ranks builds one trainer per rank of an in-process group of n (on its own
// cpu backend) and runs fn on each in its own goroutine; it returns the
// ranks' errors. The trainers are closed afterwards, the communicators
// closed by a failing rank so that the others do not wait for it.
func ranks(t *testing.T, n int, cfg func(rank int) model.Config, data func(rank int) (train, eval *model.Data),
	fn func(rank int, tr *model.Trainer, be model.Backend) error) []error {
	t.Helper()
	cs := comm.Local(n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range cs {
		wg.Go(func() {
			be := cpu.New()
			defer be.Close()
			train, eval := data(r)
			tr, err := model.NewDistributedTrainer(be, cfg(r), cs[r], train, eval)
			if err == nil {
				err = fn(r, tr, be)
				tr.Close()
			}
			if err != nil {
				cs[r].Close()
			}
			errs[r] = err
		})
	}
	wg.Wait()
	return errs
}

func same[T any](v T) func(int) T { return func(int) T { return v } }

func sameData(train, eval *model.Data) func(int) (*model.Data, *model.Data) {
	return func(int) (*model.Data, *model.Data) { return train, eval }
}

// download returns every parameter's value, or its gradient.
func download(t testing.TB, b model.Backend, m model.EnergyModel, grad bool) [][]float32 {
	var out [][]float32
	for _, p := range m.Params() {
		v, src := make([]float32, p.Size()), p.Value
		if grad {
			src = p.Grad
		}
		if err := b.Download(v, src); err != nil {
			t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func grads(t testing.TB, b model.Backend, m model.EnergyModel) [][]float32 {
	return download(t, b, m, true)
}

func params(t testing.TB, b model.Backend, m model.EnergyModel) [][]float32 {
	return download(t, b, m, false)
}

// close32 reports the first element of got farther from want than tol
// relative to want's largest magnitude.
func close32(got, want [][]float32, tol float64) error {
	for i := range want {
		scale := 0.0
		for _, x := range want[i] {
			scale = max(scale, math.Abs(float64(x)))
		}
		for j := range want[i] {
			if d := math.Abs(float64(got[i][j]) - float64(want[i][j])); !(d <= tol*scale+1e-30) {
				return fmt.Errorf("tensor %d[%d]: %v vs %v (difference %.3g, %.3g of the largest %.3g)", i, j, got[i][j], want[i][j], d, d/scale, scale)
			}
		}
	}
	return nil
}

// maxRel is the largest |got - want| relative to each tensor's largest |want|.
func maxRel(got, want [][]float32) float64 {
	worst := 0.0
	for i := range want {
		scale := 0.0
		for _, x := range want[i] {
			scale = max(scale, math.Abs(float64(x)))
		}
		for j := range want[i] {
			worst = max(worst, math.Abs(float64(got[i][j])-float64(want[i][j]))/scale)
		}
	}
	return worst
}

func bitsEqual(a, b [][]float32) error {
	for i := range a {
		for j := range a[i] {
			if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
				return fmt.Errorf("tensor %d[%d]: %v vs %v", i, j, a[i][j], b[i][j])
			}
		}
	}
	return nil
}

// TestDistributedGradientIsTheGlobalBatchGradient: N ranks, each on its
// shard, all-reduced, give the one-process gradient of the same global batch
// (float rounding apart), bitwise the same on every rank, under both
// reductions, for batches that are not multiples of N (and smaller than N).
func TestDistributedGradientIsTheGlobalBatchGradient(t *testing.T) {
	train, _ := blobs(t, 21)
	worstGrad := 0.0
	defer func() {
		t.Logf("the largest difference from one process's gradient: %.2g of the largest element", worstGrad)
	}()
	for _, red := range []model.Reduction{model.Mean, model.Sum} {
		for _, n := range []int{1, 2, 3, 4, 7} {
			for _, rows := range [][2]int{{0, 31}, {5, 12}, {900, 905}, {17, 18}} { // a batch of 31, 7, 5 and 1 rows
				cfg := model.DefaultConfig()
				cfg.Model, cfg.Batch, cfg.Reduction, cfg.Optimizer.Name = "mlp:13", 31, red, "sgd"
				if rows[1]-rows[0] < n && n > cfg.Batch {
					continue
				}
				batch := make([]int32, rows[1]-rows[0])
				for i := range batch {
					batch[i] = int32(rows[0] + 3*i) // not contiguous in the data
				}
				be := cpu.New()
				one, err := model.NewTrainer(be, cfg, train, nil)
				if err != nil {
					t.Fatal(err)
				}
				wantLoss, err := one.StepForTest(batch)
				if err != nil {
					t.Fatal(err)
				}
				want := grads(t, be, one.Model)
				one.Close()
				be.Close()
				got := make([][][]float32, n)
				losses := make([]float64, n)
				errs := ranks(t, n, same(cfg), sameData(train, nil), func(r int, tr *model.Trainer, be model.Backend) error {
					var err error
					losses[r], err = tr.StepForTest(batch)
					got[r] = grads(t, be, tr.Model)
					return err
				})
				name := fmt.Sprintf("%v, %d ranks, %d rows", red, n, len(batch))
				if err := errors.Join(errs...); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for r := range got {
					if err := bitsEqual(got[r], got[0]); err != nil {
						t.Fatalf("%s: rank %d's gradient differs from rank 0's: %v", name, r, err)
					}
					if losses[r] != losses[0] {
						t.Fatalf("%s: rank %d's loss %v, rank 0's %v", name, r, losses[r], losses[0])
					}
				}
				worstGrad = max(worstGrad, maxRel(got[0], want))
				if err := close32(got[0], want, 2e-6); err != nil {
					t.Errorf("%s: the all-reduced gradient is not the one-process gradient: %v", name, err)
				}
				if d := math.Abs(losses[0] - wantLoss); d > 1e-5*math.Abs(wantLoss) {
					t.Errorf("%s: loss %v, one process %v", name, losses[0], wantLoss)
				}
			}
		}
	}
}

func distConfig() model.Config {
	cfg := model.DefaultConfig()
	cfg.Model, cfg.Epochs, cfg.Batch, cfg.Seed, cfg.Optimizer.LR = "mlp:17", 3, 33, 9, 1e-2
	return cfg
}

// runRanks trains cfg on n in-process ranks and returns every rank's final
// weights and held-out result.
func runRanks(t *testing.T, n int, cfg model.Config, train, test *model.Data) ([][][]float32, []model.EvalResult) {
	t.Helper()
	ws := make([][][]float32, n)
	evs := make([]model.EvalResult, n)
	errs := ranks(t, n, same(cfg), sameData(train, test), func(r int, tr *model.Trainer, be model.Backend) error {
		res, err := tr.Run(context.Background())
		if err != nil {
			return err
		}
		ws[r] = params(t, be, tr.Model)
		evs[r] = *res[len(res)-1].Eval
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("%d ranks: %v", n, err)
	}
	return ws, evs
}

// TestDistributedTrainingIsReproducible: a fixed number of ranks gives
// bitwise the same weights run after run and on every rank; they agree with
// one process on the same global batches within float tolerance; one rank
// through the all-reduce path is bitwise one process.
func TestDistributedTrainingIsReproducible(t *testing.T) {
	train, test := blobs(t, 22)
	cfg := distConfig()
	be := cpu.New()
	defer be.Close()
	one, err := model.NewTrainer(be, cfg, train, test)
	if err != nil {
		t.Fatal(err)
	}
	res, err := one.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, wantEval := params(t, be, one.Model), *res[len(res)-1].Eval
	one.Close()

	w1, _ := runRanks(t, 1, cfg, train, test)
	if err := bitsEqual(w1[0], want); err != nil {
		t.Fatalf("one rank through the all-reduce differs from one process: %v", err)
	}
	for _, n := range []int{2, 3, 4} {
		a, evs := runRanks(t, n, cfg, train, test)
		b, _ := runRanks(t, n, cfg, train, test)
		for r := range a {
			if err := bitsEqual(a[r], a[0]); err != nil {
				t.Fatalf("%d ranks: rank %d's weights differ from rank 0's: %v", n, r, err)
			}
			if err := bitsEqual(b[r], a[r]); err != nil {
				t.Fatalf("%d ranks: rank %d's weights differ between two runs: %v", n, r, err)
			}
		}
		if err := close32(a[0], want, 1e-5); err != nil {
			t.Errorf("%d ranks vs one process: %v", n, err)
		}
		if d := math.Abs(evs[0].Accuracy - wantEval.Accuracy); d > 0.005 {
			t.Errorf("%d ranks: held-out accuracy %.4f, one process %.4f", n, evs[0].Accuracy, wantEval.Accuracy)
		}
		if d := math.Abs(evs[0].NLL - wantEval.NLL); d > 1e-3*wantEval.NLL {
			t.Errorf("%d ranks: held-out NLL %.6f, one process %.6f", n, evs[0].NLL, wantEval.NLL)
		}
		t.Logf("%d ranks: accuracy %.4f NLL %.6f (one process %.4f %.6f); weights differ from one process's by %.2g of the largest at most",
			n, evs[0].Accuracy, evs[0].NLL, wantEval.Accuracy, wantEval.NLL, maxRel(a[0], want))
	}
}

// hostDevice is a DeviceAllReducer on the cpu backend (download, host
// all-reduce, upload), counting its calls: the trainer's device path must
// give the host path's bits.
type hostDevice struct {
	comm.Comm
	calls *int
}

func (h hostDevice) Handles(b model.Backend) bool { return b.Name() == "cpu" }

func (h hostDevice) AllReduceMats(b model.Backend, ms []model.Mat) error {
	*h.calls++
	for _, m := range ms {
		v := make([]float32, m.Rows()*m.Cols())
		if err := b.Download(v, m); err != nil {
			return err
		}
		if err := h.Comm.AllReduceSum(v); err != nil {
			return err
		}
		if err := b.Upload(m, v); err != nil {
			return err
		}
	}
	return nil
}

func TestDistributedDeviceAllReducerPath(t *testing.T) {
	train, test := blobs(t, 23)
	cfg := distConfig()
	cfg.Epochs = 1
	want, _ := runRanks(t, 3, cfg, train, test)
	cs := comm.Local(3)
	calls := make([]int, 3)
	got := make([][][]float32, 3)
	err := commtest.RunGroup(cs, func(c comm.Comm) error {
		r := c.Rank()
		be := cpu.New()
		defer be.Close()
		tr, err := model.NewDistributedTrainer(be, cfg, hostDevice{c, &calls[r]}, train, test)
		if err != nil {
			return err
		}
		defer tr.Close()
		if _, err := tr.Run(context.Background()); err != nil {
			return err
		}
		got[r] = params(t, be, tr.Model)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for r := range got {
		if calls[r] != (train.N+cfg.Batch-1)/cfg.Batch {
			t.Fatalf("rank %d: %d device all-reduces for %d steps", r, calls[r], (train.N+cfg.Batch-1)/cfg.Batch)
		}
		if err := bitsEqual(got[r], want[0]); err != nil {
			t.Fatalf("rank %d: device path vs host path: %v", r, err)
		}
	}
}

// TestDistributedStopAndResume: a stop that reaches one rank stops every
// rank after the same step; rank 0's checkpoint resumes on as many ranks
// bitwise as the uninterrupted run, and on another number of ranks with a
// notice and within float tolerance.
func TestDistributedStopAndResume(t *testing.T) {
	train, test := blobs(t, 24)
	cfg := distConfig()
	full, _ := runRanks(t, 3, cfg, train, test)
	path := filepath.Join(t.TempDir(), "ck.safetensors")
	progress := make([][2]int, 3)
	errs := ranks(t, 3, same(cfg), sameData(train, test), func(r int, tr *model.Trainer, be model.Backend) error {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if r == 1 {
			tr.OnStep = func(s model.StepInfo) {
				if s.GlobalStep == 40 { // epoch 2, step 9
					cancel()
				}
			}
		}
		_, err := tr.Run(ctx)
		progress[r][0], progress[r][1] = tr.Progress()
		if r == 0 {
			if serr := tr.SaveCheckpoint(path, model.DataInfo{TrainRows: train.N}); serr != nil {
				return serr
			}
		}
		return err
	})
	for r, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("rank %d: %v, want a cancellation", r, err)
		}
		if r != 1 && !strings.Contains(err.Error(), "rank 1 stopped the run") {
			t.Errorf("rank %d: %v does not name rank 1", r, err)
		}
		// Cancelled after step 40 = epoch 2 step 9: step 10 is taken
		// (announcing it), every rank stops before step 11.
		if progress[r] != [2]int{1, 10} || !strings.Contains(err.Error(), "epoch 2 step 11") {
			t.Errorf("rank %d stopped at %v (%v), want epoch 1 done and 10 steps of epoch 2", r, progress[r], err)
		}
	}
	ck, err := model.ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Ranks != 3 || ck.RanksNotice(3) != "" {
		t.Fatalf("checkpoint ranks %d, notice %q", ck.Ranks, ck.RanksNotice(3))
	}
	resume := func(n int) [][][]float32 {
		ws := make([][][]float32, n)
		errs := ranks(t, n, same(cfg), sameData(train, test), func(r int, tr *model.Trainer, be model.Backend) error {
			ck, err := model.ReadCheckpoint(path)
			if err != nil {
				return err
			}
			if err := ck.Restore(tr); err != nil {
				return err
			}
			if _, err := tr.Run(context.Background()); err != nil {
				return err
			}
			ws[r] = params(t, be, tr.Model)
			return nil
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("resuming on %d ranks: %v", n, err)
		}
		return ws
	}
	for r, w := range resume(3) {
		if err := bitsEqual(w, full[0]); err != nil {
			t.Fatalf("resumed on 3 ranks, rank %d differs from the uninterrupted run: %v", r, err)
		}
	}
	note := ck.RanksNotice(2)
	if !strings.Contains(note, "3 ranks") || !strings.Contains(note, "this run has 2") {
		t.Fatalf("notice for 2 ranks: %q", note)
	}
	t.Log(note)
	w2 := resume(2)
	if err := close32(w2[0], full[0], 1e-5); err != nil {
		t.Fatalf("resumed on 2 ranks vs the 3-rank run: %v", err)
	}
}

func TestDistributedRefusesDisagreement(t *testing.T) {
	train, test := blobs(t, 25)
	other := *train
	other.Y = append([]int32(nil), train.Y...)
	other.Y[500] = (other.Y[500] + 1) % int32(other.Classes)
	for _, tc := range []struct {
		name  string
		cfg   func(int) model.Config
		data  func(int) (*model.Data, *model.Data)
		rank  int
		about string
	}{
		{"data", same(distConfig()), func(r int) (*model.Data, *model.Data) {
			if r == 2 {
				return &other, test
			}
			return train, test
		}, 2, "training data"},
		{"held-out", same(distConfig()), func(r int) (*model.Data, *model.Data) {
			if r == 1 {
				return train, nil
			}
			return train, test
		}, 1, "held-out data"},
		{"config", func(r int) model.Config {
			c := distConfig()
			if r == 1 {
				c.Optimizer.LR *= 1.0000001
			}
			return c
		}, sameData(train, test), 1, "configuration"},
	} {
		errs := ranks(t, 3, tc.cfg, tc.data, func(int, *model.Trainer, model.Backend) error { return nil })
		for r, err := range errs {
			want := fmt.Sprintf("rank %d disagreed with rank 0", tc.rank)
			if r == tc.rank {
				want = fmt.Sprintf("rank %d's %s differs from rank 0's", tc.rank, tc.about)
			}
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: rank %d: %v, want %q", tc.name, r, err, want)
			}
		}
	}
	errs := ranks(t, 3, func(int) model.Config { c := distConfig(); c.Batch = 2; return c }, sameData(train, test),
		func(int, *model.Trainer, model.Backend) error { return nil })
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "batch 2 is smaller than the 3 ranks") {
			t.Errorf("batch 2 on 3 ranks: rank %d: %v", r, err)
		}
	}
}

func TestDistributedDivergenceStopsEveryRank(t *testing.T) {
	train, _ := blobs(t, 26)
	cfg := model.DefaultConfig()
	cfg.Loss = model.DefaultLoss(model.SquareExp)
	cfg.Optimizer.Name, cfg.Optimizer.LR = "sgd", 1e6
	cfg.Batch, cfg.Epochs = 64, 3
	errs := ranks(t, 3, same(cfg), sameData(train, nil), func(_ int, tr *model.Trainer, _ model.Backend) error {
		_, err := tr.Run(context.Background())
		return err
	})
	for r, err := range errs {
		if !errors.Is(err, model.ErrDiverged) || err.Error() != errs[0].Error() {
			t.Errorf("rank %d: %v (rank 0: %v)", r, err, errs[0])
		}
	}
}

// BenchmarkDataParallelEpoch times one epoch of 12,800 MNIST rows (batch
// 128) on 1 and 2 in-process ranks (comm.Local), each on a cpu backend with
// one thread: the trainer's data-parallel overhead (gradient download,
// all-reduce, upload) without MPI or process scheduling. docs/PERFORMANCE.md.
func BenchmarkDataParallelEpoch(b *testing.B) {
	train, _ := mnist(b)
	train = train.Limit(12800)
	for _, m := range []string{"linear", "mlp:256"} {
		// ranks=1 has no communicator (the plain trainer); ranks=1+hook
		// runs the all-reduce hook on one rank (download, upload).
		for _, v := range []struct {
			name string
			n    int
			hook bool
		}{{"ranks=1", 1, false}, {"ranks=1+hook", 1, true}, {"ranks=2", 2, true}} {
			b.Run(m+"/"+v.name, func(b *testing.B) {
				cfg := model.DefaultConfig()
				cfg.Model, cfg.Epochs = m, 1
				for i := 0; i < b.N; i++ {
					err := commtest.RunGroup(comm.Local(v.n), func(c comm.Comm) error {
						be := cpu.NewWithThreads(1)
						defer be.Close()
						if !v.hook {
							c = nil
						}
						tr, err := model.NewDistributedTrainer(be, cfg, c, train, nil)
						if err != nil {
							return err
						}
						defer tr.Close()
						_, err = tr.TrainEpoch(context.Background())
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
