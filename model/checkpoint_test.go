package model_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/emu"
	"github.com/gputrain/gputrain/model"
	"github.com/gputrain/gputrain/model/safetensors"
)

// backendMakers are the backends resume must be bitwise exact on.
var backendMakers = []struct {
	name string
	open func(t *testing.T) model.Backend
}{
	{"cpu", func(*testing.T) model.Backend { return cpu.New() }},
	{"device+emu", func(t *testing.T) model.Backend {
		drv, err := emu.New(emu.Options{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := device.New(drv)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}},
	// The step captured once and replayed as a graph (software graphs
	// over the emulator): a resumed run replans its epoch mid-way.
	{"device+emu+graphs", func(t *testing.T) model.Backend { return emuBackend(t, true) }},
}

// resumeData is small and of awkward sizes: 301 rows, batch 37 (the last
// batch is short), 7 features, 5 classes.
func resumeData(t *testing.T) (train, test *model.Data) {
	s := dataset.Blobs(361, 7, 5, 2, 11)
	d := toData(s)
	cut := 301
	return &model.Data{X: d.X[:cut*d.D], Y: d.Y[:cut], N: cut, D: d.D, Classes: d.Classes},
		&model.Data{X: d.X[cut*d.D:], Y: d.Y[cut:], N: d.N - cut, D: d.D, Classes: d.Classes}
}

func resumeConfig(opt string) model.Config {
	cfg := model.DefaultConfig()
	cfg.Model, cfg.Optimizer.Name, cfg.Optimizer.LR = "mlp:16", opt, 0.01
	cfg.Epochs, cfg.Batch, cfg.Seed = 4, 37, 7
	return cfg
}

// weights downloads every parameter of tr's model.
func weights(t *testing.T, b model.Backend, m model.EnergyModel) map[string][]float32 {
	t.Helper()
	w := map[string][]float32{}
	for _, p := range m.Params() {
		v := make([]float32, p.Size())
		for i := range v {
			v[i] = float32(math.NaN())
		}
		if err := b.Download(v, p.Value); err != nil {
			t.Fatal(err)
		}
		w[p.Name] = v
	}
	return w
}

func sameBits(t *testing.T, got, want map[string][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d parameters, want %d", len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if len(g) != len(w) {
			t.Fatalf("%s: %d values, want %d", name, len(g), len(w))
		}
		for i := range w {
			if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
				t.Fatalf("%s[%d] = %v after resume, %v uninterrupted (not bitwise equal)", name, i, g[i], w[i])
			}
		}
	}
}

// TestResumeIsBitwiseExact trains 4 epochs without interruption, then
// again stopping (by cancelling the context, as Ctrl-C does) after an
// epoch boundary and in the middle of an epoch, saving a checkpoint to a
// file, and continuing in a fresh trainer from that file. The final
// weights must equal the uninterrupted run's bit for bit, and so must the
// training loss reported for the epoch that was cut.
func TestResumeIsBitwiseExact(t *testing.T) {
	train, test := resumeData(t)
	for _, bm := range backendMakers {
		for _, opt := range []string{"adam", "momentum", "sgd"} {
			t.Run(bm.name+"/"+opt, func(t *testing.T) {
				if testing.Short() && bm.name != "cpu" && opt != "adam" {
					t.Skip("-short: only adam on the emulated device")
				}
				b := bm.open(t)
				defer b.Close()
				cfg := resumeConfig(opt)
				ref, err := model.NewTrainer(b, cfg, train, test)
				if err != nil {
					t.Fatal(err)
				}
				want, err := ref.Run(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				wantW := weights(t, b, ref.Model)
				ref.Close()

				steps := (train.N + cfg.Batch - 1) / cfg.Batch // 9
				for _, stopAt := range []int{steps, 2*steps + 4, 1, 4*steps - 1} {
					t.Run(fmt.Sprintf("stop after step %d", stopAt), func(t *testing.T) {
						path := filepath.Join(t.TempDir(), "ckpt.safetensors")
						tr, err := model.NewTrainer(b, cfg, train, test)
						if err != nil {
							t.Fatal(err)
						}
						ctx, cancel := context.WithCancel(context.Background())
						tr.OnStep = func(s model.StepInfo) {
							if s.GlobalStep == stopAt {
								cancel()
							}
						}
						_, err = tr.Run(ctx)
						cancel()
						if !errors.Is(err, context.Canceled) {
							t.Fatalf("Run: %v, want context.Canceled", err)
						}
						ep, in := tr.Progress()
						if ep*steps+in != stopAt {
							t.Fatalf("Progress = %d epochs + %d steps, want %d steps", ep, in, stopAt)
						}
						if err := tr.SaveCheckpoint(path, model.DataInfo{Dataset: "blobs", TrainRows: train.N}); err != nil {
							t.Fatal(err)
						}
						tr.Close()

						ck, err := model.ReadCheckpoint(path)
						if err != nil {
							t.Fatal(err)
						}
						if ck.Epoch != ep || ck.StepInEpoch != in || ck.OptimizerSteps != stopAt {
							t.Fatalf("checkpoint says epoch %d step %d optimizer steps %d, want %d %d %d", ck.Epoch, ck.StepInEpoch, ck.OptimizerSteps, ep, in, stopAt)
						}
						tr2, err := model.NewTrainer(b, ck.Config, train, test)
						if err != nil {
							t.Fatal(err)
						}
						defer tr2.Close()
						if err := ck.Restore(tr2); err != nil {
							t.Fatal(err)
						}
						got, err := tr2.Run(context.Background())
						if err != nil {
							t.Fatal(err)
						}
						sameBits(t, weights(t, b, tr2.Model), wantW)
						// The resumed run reports the epochs from the cut one on.
						if len(got) != cfg.Epochs-ep {
							t.Fatalf("resumed run reported %d epochs, want %d", len(got), cfg.Epochs-ep)
						}
						for i, r := range got {
							w := want[ep+i]
							if r.Epoch != w.Epoch || r.TrainLoss != w.TrainLoss || r.Eval.NLL != w.Eval.NLL {
								t.Errorf("epoch %d: resumed loss %v NLL %v, uninterrupted epoch %d loss %v NLL %v", r.Epoch, r.TrainLoss, r.Eval.NLL, w.Epoch, w.TrainLoss, w.Eval.NLL)
							}
						}
					})
				}
			})
		}
	}
}

// TestCheckpointRoundTrip saves a trained model with normalization and
// class names, and checks that everything comes back and that NewModel
// gives the same energies as the trained model.
func TestCheckpointRoundTrip(t *testing.T) {
	train, test := resumeData(t)
	b := cpu.New()
	defer b.Close()
	cfg := resumeConfig("adam")
	cfg.Epochs = 2
	cfg.Loss = model.Loss{Kind: model.Hinge, Beta: 0.5, Margin: 1.5, Gamma: 2, Delta: 0.25}
	tr, err := model.NewTrainer(b, cfg, train, test)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	mean := []float32{1, 2, 3, 4, 5, 6, 7}
	std := []float32{.5, 1, 2, 3, 4, 5, 6}
	info := model.DataInfo{Dataset: "blobs", Source: "/x/y.csv", InputShape: []int{7}, ClassNames: []string{"a", "b", "c", "d", "e"},
		TrainRows: train.N, Limit: 0, TestFraction: 0.2, Mean: mean, Std: std}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := tr.SaveCheckpoint(path, info); err != nil {
		t.Fatal(err)
	}
	ck, err := model.ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Model = "mlp:16:relu" // saved in canonical form
	if fmt.Sprint(ck.Config) != fmt.Sprint(cfg) {
		t.Errorf("config %+v, saved %+v", ck.Config, cfg)
	}
	if fmt.Sprint(ck.Data) != fmt.Sprint(info) {
		t.Errorf("data info %+v, saved %+v", ck.Data, info)
	}
	if ck.Inputs != 7 || ck.Classes != 5 || ck.Epoch != 2 || ck.StepInEpoch != 0 || ck.Version != model.Version {
		t.Errorf("inputs %d classes %d epoch %d step %d version %q", ck.Inputs, ck.Classes, ck.Epoch, ck.StepInEpoch, ck.Version)
	}
	m, err := ck.NewModel(b)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	sameBits(t, weights(t, b, m), weights(t, b, tr.Model))
	dd, err := model.Upload(b, test)
	if err != nil {
		t.Fatal(err)
	}
	defer dd.Free()
	r1, err := model.Evaluate(b, m, dd, cfg.Loss, 13)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := tr.Evaluate()
	if err != nil {
		t.Fatal(err)
	}
	if r1.Accuracy != r2.Accuracy || math.Abs(r1.NLL-r2.NLL) > 1e-6*math.Abs(r2.NLL) {
		t.Errorf("loaded model: accuracy %v NLL %v; trained model %v %v", r1.Accuracy, r1.NLL, r2.Accuracy, r2.NLL)
	}
}

// TestRestoreRefusesContradictions: another model shape, other classes,
// other data size, another optimizer, finished training.
func TestRestoreRefusesContradictions(t *testing.T) {
	train, test := resumeData(t)
	b := cpu.New()
	defer b.Close()
	cfg := resumeConfig("adam")
	cfg.Epochs = 1
	tr, err := model.NewTrainer(b, cfg, train, test)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := tr.SaveCheckpoint(path, model.DataInfo{}); err != nil {
		t.Fatal(err)
	}
	tr.Close()
	ck, err := model.ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	more := func(c model.Config) model.Config { c.Epochs = 3; return c }
	moreClasses := *train
	moreClasses.Classes = 6
	moreRows := train.Limit(300)
	for _, tc := range []struct {
		name  string
		cfg   model.Config
		train *model.Data
		want  string
	}{
		{"model", func() model.Config { c := more(cfg); c.Model = "mlp:17"; return c }(), train, "model mlp:17:relu contradicts the checkpoint " + path + ", which has mlp:16:relu"},
		{"optimizer", func() model.Config { c := more(cfg); c.Optimizer.Name = "sgd"; return c }(), train, "optimizer sgd contradicts"},
		{"batch", func() model.Config { c := more(cfg); c.Batch = 36; return c }(), train, "batch 36 contradicts"},
		{"seed", func() model.Config { c := more(cfg); c.Seed = 8; return c }(), train, "seed 8 contradicts"},
		{"loss", func() model.Config { c := more(cfg); c.Loss.Kind = model.Hinge; return c }(), train, "loss hinge(m=1) contradicts"},
		{"classes", more(cfg), &moreClasses, "7 inputs and 6 classes"},
		{"rows", more(cfg), moreRows, "300 rows"},
		{"finished", func() model.Config { c := cfg; c.Epochs = 0 + 1; return c }(), train, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := model.NewTrainer(b, tc.cfg, tc.train, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			err = ck.Restore(tr)
			if tc.want == "" {
				// Restoring a finished run is allowed: Run then has nothing left to do.
				if err != nil {
					t.Fatal(err)
				}
				if rs, err := tr.Run(context.Background()); err != nil || len(rs) != 0 {
					t.Fatalf("Run after a finished checkpoint: %d epochs, %v", len(rs), err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Restore: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestDecodeCheckpointRefusesDamage removes or reshapes one tensor or
// metadata entry at a time.
func TestDecodeCheckpointRefusesDamage(t *testing.T) {
	train, _ := resumeData(t)
	b := cpu.New()
	defer b.Close()
	tr, err := model.NewTrainer(b, resumeConfig("momentum"), train, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	good, err := tr.Checkpoint(model.DataInfo{TrainRows: train.N})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := model.DecodeCheckpoint(good); err != nil {
		t.Fatalf("undamaged: %v", err)
	}
	clone := func() *safetensors.File {
		f := &safetensors.File{Metadata: map[string]string{}}
		for k, v := range good.Metadata {
			f.Metadata[k] = v
		}
		f.Tensors = append(f.Tensors, good.Tensors...)
		return f
	}
	drop := func(name string) func(*safetensors.File) {
		return func(f *safetensors.File) {
			for i := range f.Tensors {
				if f.Tensors[i].Name == name {
					f.Tensors = append(f.Tensors[:i:i], f.Tensors[i+1:]...)
					return
				}
			}
			t.Fatalf("no tensor %s to drop", name)
		}
	}
	for _, tc := range []struct {
		name   string
		damage func(*safetensors.File)
		want   string
	}{
		{"no format", func(f *safetensors.File) { delete(f.Metadata, "format") }, "not a gputrain checkpoint"},
		{"other format", func(f *safetensors.File) { f.Metadata["format"] = "x/2" }, `format "x/2"`},
		{"no model", func(f *safetensors.File) { delete(f.Metadata, "model") }, "missing metadata model"},
		{"bad model", func(f *safetensors.File) { f.Metadata["model"] = "cnn" }, "invalid model"},
		{"bad beta", func(f *safetensors.File) { f.Metadata["beta"] = "-1" }, "beta"},
		{"bad classes", func(f *safetensors.File) { f.Metadata["classes"] = "five" }, "classes"},
		{"bad shape", func(f *safetensors.File) { f.Metadata["input_shape"] = "[2,2]" }, "input_shape"},
		{"no weight", drop("layers.1.weight"), "no tensor layers.1.weight"},
		{"no rng", drop(model.TensorRNG), model.TensorRNG},
		{"no epoch", drop(model.TensorEpoch), model.TensorEpoch},
		{"wrong classes", func(f *safetensors.File) { f.Metadata["classes"] = "6" }, "tensor layers.1.weight is F32 [5 16], the model needs F32 [6 16]"},
		{"wrong hidden", func(f *safetensors.File) { f.Metadata["model"] = "mlp:15" }, "layers.0.weight"},
		{"extra layer", func(f *safetensors.File) { f.Metadata["model"] = "linear"; f.Metadata["classes"] = "16" }, "layers.1.weight is not part of the model linear"},
		{"normalizer missing", func(f *safetensors.File) { f.Metadata["normalization"] = "standardize" }, "no tensor normalizer.mean"},
		{"unknown normalization", func(f *safetensors.File) { f.Metadata["normalization"] = "pca" }, "unknown normalization"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := clone()
			tc.damage(f)
			_, err := model.DecodeCheckpoint(f)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("DecodeCheckpoint: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// TestPythonReadsCheckpoint runs scripts/read_checkpoint.py (standard
// library only) on a checkpoint and checks that it lists every tensor with
// its shape and decodes the output layer's weights and biases exactly.
func TestPythonReadsCheckpoint(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not on PATH, so the pure-Python reader cannot be run")
	}
	train, _ := resumeData(t)
	b := cpu.New()
	defer b.Close()
	cfg := resumeConfig("adam")
	cfg.Epochs = 1
	tr, err := model.NewTrainer(b, cfg, train, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := tr.SaveCheckpoint(path, model.DataInfo{TrainRows: train.N, Mean: make([]float32, 7), Std: []float32{1, 2, 3, 4, 5, 6, 7}}); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("../scripts/read_checkpoint.py")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, script, "--dump", "layers.1.bias", path).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	text := string(out)
	f, err := safetensors.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, ts := range f.Tensors {
		line := fmt.Sprintf("%s %s %v", ts.Name, ts.DType, strings.ReplaceAll(fmt.Sprint(ts.Shape), " ", ","))
		if !strings.Contains(text, line+"\n") {
			t.Errorf("python output lacks %q:\n%s", line, text)
		}
	}
	for _, want := range []string{"model = mlp:16:relu", "classes = 5", "loss = nll", "beta = 1", "normalization = standardize"} {
		if !strings.Contains(text, want) {
			t.Errorf("python output lacks metadata %q:\n%s", want, text)
		}
	}
	// Python prints the float32 values as repr of the decoded doubles,
	// which round-trip: compare with Go's values converted the same way.
	bias := weights(t, b, tr.Model)["layer1/b"]
	var ws []string
	for _, v := range bias {
		ws = append(ws, fmt.Sprintf("%.9g", v))
	}
	want := "layers.1.bias = " + strings.Join(ws, " ")
	if !strings.Contains(text, want) {
		t.Errorf("python decoded the biases differently:\n%s\nwant %s", text, want)
	}
}

// FuzzDecodeCheckpoint feeds damaged checkpoint files to the reader: it
// must return an error or a checkpoint whose model can be built, never
// panic. The seed is a real checkpoint.
func FuzzDecodeCheckpoint(f *testing.F) {
	train, _ := resumeData(&testing.T{})
	b := cpu.New()
	defer b.Close()
	cfg := resumeConfig("momentum")
	cfg.Model = "mlp:3"
	tr, err := model.NewTrainer(b, cfg, train.Limit(40), nil)
	if err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "seed.safetensors")
	if err := tr.SaveCheckpoint(path, model.DataInfo{Mean: make([]float32, 7), Std: []float32{1, 1, 1, 1, 1, 1, 1}}); err != nil {
		f.Fatal(err)
	}
	tr.Close()
	seed, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		sf, err := safetensors.Read(bytesReaderAt(data), int64(len(data)))
		if err != nil {
			return
		}
		ck, err := model.DecodeCheckpoint(sf)
		if err != nil {
			return
		}
		m, err := ck.NewModel(b)
		if err != nil {
			return
		}
		m.Free()
	})
}

type bytesReaderAt []byte

func (r bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(r)) {
		return 0, errors.New("offset out of range")
	}
	n := copy(p, r[off:])
	if n < len(p) {
		return n, errors.New("EOF")
	}
	return n, nil
}

// TestJointCheckpointEnergyFormula: the "energy" metadata of a joint
// checkpoint describes how its tensors give E(y, x). The energies of every
// joint answer, computed in float64 from the file's tensors exactly as the
// string says, equal the loaded model's; with and without pairwise tables.
func TestJointCheckpointEnergyFormula(t *testing.T) {
	vars := []int{3, 2, 2}
	s := dataset.Blobs(157, 5, 12, 2, 21)
	d := toData(s)
	b := cpu.New()
	defer b.Close()
	for _, pairwise := range []bool{true, false} {
		t.Run(fmt.Sprintf("pairwise=%v", pairwise), func(t *testing.T) {
			cfg := model.DefaultConfig()
			cfg.Model, cfg.Vars, cfg.NoPairwise = "mlp:7:tanh", vars, !pairwise
			cfg.Epochs, cfg.Batch, cfg.Seed, cfg.Optimizer.LR = 2, 31, 5, 0.05
			tr, err := model.NewTrainer(b, cfg, d, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			if _, err := tr.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "j.safetensors")
			if err := tr.SaveCheckpoint(path, model.DataInfo{Dataset: "blobs", TrainRows: d.N}); err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			formula := f.Metadata["energy"]
			for _, w := range []string{"U_i(v,x) = -(layers.L.weight[off_i+v]", "off_i = sum_{k<i} vars[k]", "last variable fastest", "layers.l.weight h'"} {
				if !strings.Contains(formula, w) {
					t.Errorf("energy metadata %q lacks %q", formula, w)
				}
			}
			if got := strings.Contains(formula, "pairwise.P[off_ij + a*vars[j] + b]"); got != pairwise {
				t.Errorf("pairwise %v, but energy metadata %q", pairwise, formula)
			}
			tensor := func(name string) []float64 {
				tt, ok := f.Tensor(name)
				if !ok {
					t.Fatalf("no tensor %s", name)
				}
				v, err := tt.Float32s()
				if err != nil {
					t.Fatal(err)
				}
				out := make([]float64, len(v))
				for i, x := range v {
					out[i] = float64(x)
				}
				return out
			}
			w0, b0, w1, b1 := tensor("layers.0.weight"), tensor("layers.0.bias"), tensor("layers.1.weight"), tensor("layers.1.bias")
			var p []float64
			if pairwise {
				p = tensor("pairwise.P")
				nonzero := false
				for _, v := range p {
					nonzero = nonzero || v != 0
				}
				if !nonzero {
					t.Fatal("the pairwise tables are still zero after training: the test would not see them")
				}
			}
			ck, err := model.ReadCheckpoint(path)
			if err != nil {
				t.Fatal(err)
			}
			m, err := ck.NewModel(b)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Free()
			rows, hidden, sumK := 7, 7, 7
			x := d.X[:rows*d.D]
			j := 12
			got := make([]float32, rows*j)
			for i := range got {
				got[i] = float32(math.NaN())
			}
			if err := model.Energies(b, m, x, rows, 3, func(start int, e []float32) error {
				copy(got[start*j:], e)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			for r := 0; r < rows; r++ {
				h := make([]float64, hidden)
				for k := range h {
					a := b0[k]
					for c := 0; c < d.D; c++ {
						a += w0[k*d.D+c] * float64(x[r*d.D+c])
					}
					h[k] = math.Tanh(a)
				}
				u := make([]float64, sumK) // U_i(v) at off_i + v
				for k := range u {
					a := b1[k]
					for c := range h {
						a += w1[k*hidden+c] * h[c]
					}
					u[k] = -a
				}
				digits := make([]int, len(vars))
				for y := 0; y < j; y++ {
					model.JointValues(vars, y, digits)
					var e float64
					off := 0
					for i, v := range digits {
						e += u[off+v]
						off += vars[i]
					}
					offP := 0
					for i := range vars {
						for k := i + 1; k < len(vars); k++ {
							if pairwise {
								e += p[offP+digits[i]*vars[k]+digits[k]]
							}
							offP += vars[i] * vars[k]
						}
					}
					if g := float64(got[r*j+y]); !(math.Abs(g-e) <= 1e-4*(1+math.Abs(e))) {
						t.Errorf("row %d answer %d %v: model energy %v, the metadata's formula %v", r, y, digits, g, e)
					}
				}
			}
		})
	}
}
