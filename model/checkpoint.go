package model

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/gputrain/gputrain/model/safetensors"
)

// Version is the gputrain version written into every checkpoint.
const Version = "0.6.0"

// CheckpointFormat identifies the layout of the tensors and metadata below
// (metadata key "format"); a reader refuses other formats by name. Format 2
// added the checksums and the training data's fingerprint (integrity.go).
const CheckpointFormat = "gputrain-checkpoint/2"

// Names of the trainer-state tensors of a checkpoint. Weights are named by
// TensorName, optimizer state by "optimizer." + TensorName of its parameter
// with the optimizer's slot ("optimizer.adam.m.layers.0.weight").
const (
	TensorEpoch          = "trainer.epoch"           // I64 scalar: completed epochs
	TensorStepInEpoch    = "trainer.step_in_epoch"   // I64 scalar: steps of the next epoch already taken
	TensorOptimizerSteps = "trainer.optimizer_steps" // I64 scalar: optimizer steps taken (Adam's t)
	TensorEpochLossSum   = "trainer.epoch_loss_sum"  // F64 scalar: summed row losses of those steps
	TensorRNG            = "trainer.rng"             // U8: PCG state (MarshalBinary) at the start of the next epoch
	TensorMean           = "normalizer.mean"         // F32 [Inputs]: x' = (x - mean) / std
	TensorStd            = "normalizer.std"          // F32 [Inputs]
)

// DataInfo describes what a model was trained on and how a raw input
// becomes the model's input. A checkpoint stores it so that eval and
// predict prepare inputs exactly as training did, and resume reloads the
// same data.
type DataInfo struct {
	Dataset    string   // short name shown to users ("mnist", "iris.csv")
	Source     string   // where the data was loaded from: "" for the embedded MNIST, else a directory or CSV file
	InputShape []int    // the shape of one raw input (product = inputs), [28 28] for MNIST
	ClassNames []string // names of the answers, when the labels were strings
	TrainRows  int      // rows of the training split the trainer saw
	Limit      int      // the --limit that produced TrainRows (0: all)
	// TestFraction is the share of a CSV file held out for testing (drawn
	// by the run's seed); 0 for IDX data, which comes split.
	TestFraction float64
	// Mean and Std, when set, standardize every raw feature before the
	// model sees it: x' = (x - Mean[j]) / Std[j], fitted on the training
	// split. Nil: features are used as loaded.
	Mean, Std []float32
	// LabelColumns are the CSV label columns the model was trained on, as
	// --label / --labels named them; nil: the default column
	// (dataset.LabelDefault). Several make the labels joint indices (see
	// Config.Vars).
	LabelColumns []string
	// SeqColumn is the sequence-id column of a chain model's CSV data
	// (docs/SEQUENCE.md); LabelColumns then holds its label column.
	SeqColumn string
	// FeatureNames name the model's inputs in order, when the CSV file had
	// a header; predict and eval match a file's columns to them by name.
	FeatureNames []string
	// CSVColumns and LabelIndex describe the training CSV file: its number
	// of columns and the (0-based) label columns, so an input file in the
	// training layout can drop them (0 and nil for IDX data).
	CSVColumns int
	LabelIndex []int
	LabelNames []string // the label columns' header names, when it had one
	// SplitSeed seeds the shuffles that hold out TestFraction of a CSV
	// file and ValFraction of the training rows (validation, evaluated
	// after every epoch). TestSource, when set, is the --test file the
	// test rows came from instead.
	SplitSeed   uint64
	ValFraction float64
	TestSource  string
}

// Checkpoint is a decoded checkpoint: everything needed to rebuild the
// model for inference, or a Trainer that continues bitwise where the saved
// one stopped.
type Checkpoint struct {
	Path            string // the file it was read from, for messages
	Version         string // gputrain version that wrote it
	Config          Config
	Inputs, Classes int
	Data            DataInfo
	Epoch           int // completed epochs
	StepInEpoch     int // steps of epoch Epoch+1 already taken (Ctrl-C mid-epoch)
	OptimizerSteps  int
	EpochLossSum    float64
	// DataSHA256 is the fingerprint of the training data (DataFingerprint
	// of the data given to the trainer, after any normalization).
	DataSHA256 string
	// AcceptOtherData lets Restore continue on training data whose
	// fingerprint differs from DataSHA256 (same shape, other values): set
	// it only when that is what is meant.
	AcceptOtherData bool
	early           earlyStopState
	rng             []byte
	file            *safetensors.File

	// Ranks is the number of data-parallel ranks that trained it (1 for
	// files written before the "ranks" metadata existed).
	Ranks int
}

// TensorName maps a parameter name to its checkpoint tensor name: a dense
// layer's "layer0/W" is "layers.0.weight" and "layer0/b" is "layers.0.bias",
// the names PyTorch's nn.Linear stack would give; any other name has its
// '/' replaced by '.'.
func TensorName(param string) string {
	if rest, ok := strings.CutPrefix(param, "layer"); ok {
		if l, kind, ok := strings.Cut(rest, "/"); ok {
			if _, err := strconv.Atoi(l); err == nil {
				switch kind {
				case "W":
					return "layers." + l + ".weight"
				case "b":
					return "layers." + l + ".bias"
				}
			}
		}
	}
	return strings.ReplaceAll(param, "/", ".")
}

// tensorShape is the stored shape of a rows x cols parameter: 1 x n row
// vectors (biases) are stored 1-D, as other frameworks store biases.
func tensorShape(name string, rows, cols int) []int {
	if rows == 1 && (strings.HasSuffix(name, ".bias") || isChainVector(name)) {
		return []int{cols}
	}
	return []int{rows, cols}
}

// optimizerTensorName maps an optimizer state name "adam/m/layer0/W" to
// "optimizer.adam.m.layers.0.weight".
func optimizerTensorName(state string) string {
	parts := strings.SplitN(state, "/", 3)
	if len(parts) != 3 {
		return "optimizer." + strings.ReplaceAll(state, "/", ".")
	}
	return "optimizer." + parts[0] + "." + parts[1] + "." + TensorName(parts[2])
}

func scalarI64(name string, v int) safetensors.Tensor {
	t := safetensors.Int64Tensor(name, nil, []int64{int64(v)})
	t.Shape = []int{}
	return t
}

func scalarF64(name string, v float64) safetensors.Tensor {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint64(b, math.Float64bits(v))
	return safetensors.Tensor{Name: name, DType: safetensors.F64, Shape: []int{}, Data: b}
}

func fmtFloat(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }

// Checkpoint captures the trainer's whole state (weights, optimizer state,
// progress, shuffle RNG) and the configuration as a safetensors file. It
// can be taken between epochs or after Run stopped mid-epoch on a done
// context: the epoch continues where it stopped.
func (t *Trainer) Checkpoint(info DataInfo) (*safetensors.File, error) {
	if err := t.settle(); err != nil { // steps still in flight (pipeline.go)
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if t.bt == nil {
		return nil, errors.New("checkpoint: trainer used after Close")
	}
	inputs, classes := t.Model.Inputs(), t.Model.Classes()
	if (info.Mean != nil || info.Std != nil) && (len(info.Mean) != inputs || len(info.Std) != inputs) {
		return nil, fmt.Errorf("checkpoint: normalizer has %d means and %d deviations for %d inputs", len(info.Mean), len(info.Std), inputs)
	}
	spec, err := t.cfg.Spec()
	if err != nil {
		return nil, err
	}
	f := &safetensors.File{Metadata: map[string]string{}}
	download := func(m Mat) ([]float32, error) {
		v := make([]float32, m.Rows()*m.Cols())
		return v, t.b.Download(v, m)
	}
	for _, p := range t.Model.Params() {
		v, err := download(p.Value)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: downloading %s: %w", p.Name, err)
		}
		name := TensorName(p.Name)
		if err := nonFinite(name, v); err != nil {
			return nil, t.notSaved(err)
		}
		r, c := p.Shape()
		f.Tensors = append(f.Tensors, safetensors.Float32Tensor(name, tensorShape(name, r, c), v))
	}
	for _, s := range t.Optimizer.State() {
		v, err := download(s.Mat)
		if err != nil {
			return nil, fmt.Errorf("checkpoint: downloading %s: %w", s.Name, err)
		}
		name := optimizerTensorName(s.Name)
		if err := nonFinite(name, v); err != nil {
			return nil, t.notSaved(err)
		}
		f.Tensors = append(f.Tensors, safetensors.Float32Tensor(name, tensorShape(name, s.Mat.Rows(), s.Mat.Cols()), v))
	}
	f.Tensors = append(f.Tensors,
		scalarI64(TensorEpoch, t.epoch),
		scalarI64(TensorStepInEpoch, t.done),
		scalarI64(TensorOptimizerSteps, t.Optimizer.Steps()),
		scalarF64(TensorEpochLossSum, t.doneLoss),
		safetensors.Uint8Tensor(TensorRNG, t.epochRNG),
	)
	norm := "none"
	if info.Mean != nil {
		norm = "standardize"
		f.Tensors = append(f.Tensors,
			safetensors.Float32Tensor(TensorMean, []int{inputs}, info.Mean),
			safetensors.Float32Tensor(TensorStd, []int{inputs}, info.Std))
	}
	shape := info.InputShape
	if len(shape) == 0 {
		shape = []int{inputs}
	}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	c := t.cfg
	md := f.Metadata
	md["format"] = CheckpointFormat
	md["gputrain_version"] = Version
	md["model"] = spec.String()
	if len(c.Vars) > 0 {
		md["vars"] = js(c.Vars)
		md["pairwise"] = strconv.FormatBool(!c.NoPairwise)
	}
	if c.Chain {
		t.chainMetadata(md, info)
	}
	md["energy"] = energyFormula(c)
	md["inputs"] = strconv.Itoa(inputs)
	md["classes"] = strconv.Itoa(classes)
	md["input_shape"] = js(shape)
	if len(info.ClassNames) > 0 {
		md["class_names"] = js(info.ClassNames)
	}
	if len(info.LabelColumns) > 0 {
		md["label_columns"] = js(info.LabelColumns)
	}
	if len(info.FeatureNames) > 0 {
		if len(info.FeatureNames) != inputs {
			return nil, fmt.Errorf("checkpoint: %d feature names for %d inputs", len(info.FeatureNames), inputs)
		}
		md["feature_names"] = js(info.FeatureNames)
	}
	if info.CSVColumns > 0 {
		md["csv_columns"] = strconv.Itoa(info.CSVColumns)
		md["csv_label_index"] = js(info.LabelIndex)
	}
	if len(info.LabelNames) > 0 {
		md["csv_label_names"] = js(info.LabelNames)
	}
	md["split_seed"] = strconv.FormatUint(info.SplitSeed, 10)
	md["val_fraction"] = fmtFloat(info.ValFraction)
	if info.TestSource != "" {
		md["test_source"] = info.TestSource
	}
	md["loss"] = c.Loss.Kind.String()
	md["beta"] = fmtFloat(c.Loss.Beta)
	md["margin"] = fmtFloat(c.Loss.Margin)
	md["gamma"] = fmtFloat(c.Loss.Gamma)
	md["delta"] = fmtFloat(c.Loss.Delta)
	md["optimizer"] = strings.ToLower(c.Optimizer.Name)
	md["lr"] = fmtFloat(c.Optimizer.LR)
	md["momentum"] = fmtFloat(c.Optimizer.Momentum)
	md["adam_beta1"] = fmtFloat(c.Optimizer.Beta1)
	md["adam_beta2"] = fmtFloat(c.Optimizer.Beta2)
	md["adam_eps"] = fmtFloat(c.Optimizer.Eps)
	md["weight_decay"] = fmtFloat(c.Optimizer.WeightDecay)
	md["epochs"] = strconv.Itoa(c.Epochs)
	md["batch"] = strconv.Itoa(c.Batch)
	md["seed"] = strconv.FormatUint(c.Seed, 10)
	md["reduction"] = c.Reduction.String()
	md["lr_schedule"] = c.Schedule.String()
	if c.EarlyStop.Patience > 0 {
		md["early_stop"] = js(earlyStopJSON{c.EarlyStop.Monitor, c.EarlyStop.Patience, c.EarlyStop.MinDelta})
		md["early_stop_state"] = js(earlyStateJSON{t.early.best, t.early.bestEpoch, t.early.stopped})
	}
	md["precision"] = c.Precision.String()
	md["ranks"] = strconv.Itoa(t.Ranks())
	if c.Sampled.Kind != SampledNone {
		md["sampled"], md["samples"], md["proposal"] = c.Sampled.Kind.String(), strconv.Itoa(c.Sampled.Samples), c.Sampled.Proposal
	}
	md["dataset"] = info.Dataset
	md["data_source"] = info.Source
	md["train_rows"] = strconv.Itoa(t.units())
	md["limit"] = strconv.Itoa(info.Limit)
	md["test_fraction"] = fmtFloat(info.TestFraction)
	md["normalization"] = norm
	if t.dataSHA256 == "" {
		t.dataSHA256 = DataFingerprint(t.train.Host)
	}
	md[metaDataSHA256] = t.dataSHA256
	sealChecksums(f)
	return f, nil
}

// notSaved explains why a checkpoint with non-finite weights is refused.
func (t *Trainer) notSaved(err error) error {
	where := fmt.Sprintf("after epoch %d", t.epoch)
	if t.done > 0 {
		where = fmt.Sprintf("in epoch %d after step %d", t.epoch+1, t.done)
	}
	return fmt.Errorf("checkpoint not saved: the weights %s are not finite, the run diverged: %w", where, err)
}

// Formulas of the "energy" metadata: what a reader without the docs needs
// to compute E(y, x) from the tensors. L is the number of hidden layers.
const (
	trunkFormula = "h = activation(layers.l.weight h' + layers.l.bias) for hidden l < L, h' = x for l = 0"
	denseFormula = "E(y,x) = -(layers.L.weight[y] . h(x) + layers.L.bias[y]), " + trunkFormula
	jointFormula = "joint answer y = (y_0..y_{n-1}), y_i in [0, vars[i]), joint index row-major (last variable fastest); " +
		"E(y,x) = sum_i U_i(y_i,x)%s; U_i(v,x) = -(layers.L.weight[off_i+v] . h(x) + layers.L.bias[off_i+v]), off_i = sum_{k<i} vars[k]%s; " + trunkFormula
	pairTerm    = " + sum_{i<j} P_ij(y_i,y_j)"
	pairFormula = "; P_ij(a,b) = pairwise.P[off_ij + a*vars[j] + b], off_ij = sum of vars[k]*vars[l] over the pairs k<l before (i,j) in lexicographic order"
)

// energyFormula describes the energy of cfg's model in terms of the
// checkpoint's tensor names.
func energyFormula(cfg Config) string {
	switch {
	case cfg.Chain:
		return chainFormula
	case len(cfg.Vars) == 0 && isCBOW(cfg):
		return cbowFormula
	case len(cfg.Vars) == 0:
		return denseFormula
	case cfg.NoPairwise:
		return fmt.Sprintf(jointFormula, "", " (unary only: no pairwise tables)")
	}
	return fmt.Sprintf(jointFormula, pairTerm, pairFormula)
}

// SaveCheckpoint writes Checkpoint(info) to path atomically (see
// safetensors.WriteFileAtomic): a crash at any moment leaves the previous
// file intact.
func (t *Trainer) SaveCheckpoint(path string, info DataInfo) error {
	f, err := t.Checkpoint(info)
	if err != nil {
		return err
	}
	return safetensors.WriteFileAtomic(path, f)
}

// ReadCheckpoint reads and decodes a checkpoint file; errors name it.
func ReadCheckpoint(path string) (*Checkpoint, error) {
	f, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	c, err := DecodeCheckpoint(f)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	c.Path = path
	return c, nil
}

// DecodeCheckpoint checks a safetensors file against the checkpoint format:
// metadata that parses into a valid Config, and every tensor the model and
// optimizer it describes need, with the right shapes.
func DecodeCheckpoint(f *safetensors.File) (*Checkpoint, error) {
	md := f.Metadata
	if md["format"] != CheckpointFormat {
		switch md["format"] {
		case "":
			return nil, fmt.Errorf("not a gputrain checkpoint (no %q metadata)", "format")
		case "gputrain-checkpoint/1":
			return nil, fmt.Errorf("format %q (gputrain 0.5, without checksums) is no longer read: retrain with gputrain %s", md["format"], Version)
		}
		return nil, fmt.Errorf("format %q is not %q (written by a different gputrain version?)", md["format"], CheckpointFormat)
	}
	var errs []string
	need := func(k string) string {
		v, ok := md[k]
		if !ok {
			errs = append(errs, "missing metadata "+k)
		}
		return v
	}
	num := func(k string) float64 {
		v := need(k)
		x, err := strconv.ParseFloat(v, 64)
		if err != nil && v != "" {
			errs = append(errs, fmt.Sprintf("metadata %s = %q is not a number", k, v))
		}
		return x
	}
	integer := func(k string) int {
		v := need(k)
		x, err := strconv.Atoi(v)
		if err != nil && v != "" {
			errs = append(errs, fmt.Sprintf("metadata %s = %q is not an integer", k, v))
		}
		return x
	}
	c := &Checkpoint{Version: md["gputrain_version"], file: f}
	cfg := DefaultConfig()
	cfg.Model = need("model")
	kind, err := ParseLossKind(need("loss"))
	if err != nil {
		errs = append(errs, err.Error())
	}
	cfg.Loss = Loss{Kind: kind, Beta: num("beta"), Margin: num("margin"), Gamma: num("gamma"), Delta: num("delta")}
	cfg.Optimizer = OptimizerConfig{Name: need("optimizer"), LR: num("lr"), Momentum: num("momentum"),
		Beta1: num("adam_beta1"), Beta2: num("adam_beta2"), Eps: num("adam_eps"), WeightDecay: num("weight_decay")}
	cfg.Epochs = integer("epochs")
	cfg.Batch = integer("batch")
	if s, err := strconv.ParseUint(need("seed"), 10, 64); err != nil {
		errs = append(errs, "metadata seed is not an unsigned integer")
	} else {
		cfg.Seed = s
	}
	if cfg.Reduction, err = ParseReduction(need("reduction")); err != nil {
		errs = append(errs, err.Error())
	}
	if v, ok := md["lr_schedule"]; ok {
		if cfg.Schedule, err = ParseSchedule(v); err != nil {
			errs = append(errs, "metadata lr_schedule: "+err.Error())
		}
	}
	if v, ok := md["early_stop"]; ok {
		var e earlyStopJSON
		var st earlyStateJSON
		if json.Unmarshal([]byte(v), &e) != nil || json.Unmarshal([]byte(md["early_stop_state"]), &st) != nil {
			errs = append(errs, "metadata early_stop / early_stop_state are not the JSON objects gputrain writes")
		}
		cfg.EarlyStop = EarlyStop{Monitor: e.Monitor, Patience: e.Patience, MinDelta: e.MinDelta}
		c.early = earlyStopState{best: st.Best, bestEpoch: st.BestEpoch, stopped: st.Stopped}
	}
	if v, ok := md["sampled"]; ok {
		if cfg.Sampled.Kind, err = ParseSampledKind(v); err != nil {
			errs = append(errs, err.Error())
		}
		cfg.Sampled.Samples, cfg.Sampled.Proposal = integer("samples"), md["proposal"]
	}
	// Checkpoints from before precision settings computed in fp32.
	if v, ok := md["precision"]; ok {
		if cfg.Precision, err = ParsePrecision(v); err != nil {
			errs = append(errs, "metadata "+err.Error())
		}
	}
	if v, ok := md["vars"]; ok {
		if err := json.Unmarshal([]byte(v), &cfg.Vars); err != nil {
			errs = append(errs, "metadata vars is not a JSON list of integers")
		}
		cfg.NoPairwise = md["pairwise"] == "false"
	}
	cfg.Chain = md["chain"] == "true"
	c.Inputs, c.Classes = integer("inputs"), integer("classes")
	c.Ranks = 1
	if _, ok := md["ranks"]; ok {
		if c.Ranks = integer("ranks"); c.Ranks < 1 {
			errs = append(errs, fmt.Sprintf("metadata ranks = %d is not >= 1", c.Ranks))
		}
	}
	d := &c.Data
	d.Dataset, d.Source = md["dataset"], md["data_source"]
	d.TrainRows, d.Limit = integer("train_rows"), integer("limit")
	d.TestFraction = num("test_fraction")
	if err := json.Unmarshal([]byte(need("input_shape")), &d.InputShape); err != nil {
		errs = append(errs, "metadata input_shape is not a JSON list of integers")
	}
	if v, ok := md["class_names"]; ok {
		if err := json.Unmarshal([]byte(v), &d.ClassNames); err != nil {
			errs = append(errs, "metadata class_names is not a JSON list of strings")
		}
	}
	if v, ok := md["label_columns"]; ok {
		if err := json.Unmarshal([]byte(v), &d.LabelColumns); err != nil {
			errs = append(errs, "metadata label_columns is not a JSON list of strings")
		}
	}
	if v, ok := md["feature_names"]; ok {
		if err := json.Unmarshal([]byte(v), &d.FeatureNames); err != nil {
			errs = append(errs, "metadata feature_names is not a JSON list of strings")
		}
	}
	if v, ok := md["csv_columns"]; ok {
		d.CSVColumns, _ = strconv.Atoi(v)
		if err := json.Unmarshal([]byte(md["csv_label_index"]), &d.LabelIndex); err != nil || d.CSVColumns < 1 {
			errs = append(errs, "metadata csv_columns / csv_label_index are not a column count and a JSON list of indices")
		}
		for _, i := range d.LabelIndex {
			if i < 0 || i >= d.CSVColumns {
				errs = append(errs, fmt.Sprintf("metadata csv_label_index %v outside the %d columns", d.LabelIndex, d.CSVColumns))
				break
			}
		}
	}
	if v, ok := md["csv_label_names"]; ok {
		if err := json.Unmarshal([]byte(v), &d.LabelNames); err != nil {
			errs = append(errs, "metadata csv_label_names is not a JSON list of strings")
		}
	}
	if v, ok := md["split_seed"]; ok {
		if d.SplitSeed, err = strconv.ParseUint(v, 10, 64); err != nil {
			errs = append(errs, "metadata split_seed is not an unsigned integer")
		}
	}
	if v, ok := md["val_fraction"]; ok {
		d.ValFraction, _ = strconv.ParseFloat(v, 64)
		if !(d.ValFraction >= 0 && d.ValFraction < 1) {
			errs = append(errs, fmt.Sprintf("metadata val_fraction %q is not in [0, 1)", v))
		}
	}
	d.TestSource = md["test_source"]
	if len(errs) > 0 {
		return nil, errors.New(strings.Join(errs, "; "))
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	c.Config = cfg
	if c.Inputs < 1 || c.Classes < 1 {
		return nil, fmt.Errorf("metadata: inputs %d and classes %d must be >= 1", c.Inputs, c.Classes)
	}
	p := 1
	for _, x := range d.InputShape {
		if x < 1 || x > c.Inputs || p > c.Inputs {
			p = -1 // also stops the product from overflowing
			break
		}
		p *= x
	}
	if p != c.Inputs {
		return nil, fmt.Errorf("metadata: input_shape %v does not hold %d inputs", d.InputShape, c.Inputs)
	}
	if len(d.ClassNames) > c.Classes {
		return nil, fmt.Errorf("metadata: %d class names for %d classes", len(d.ClassNames), c.Classes)
	}
	if d.FeatureNames != nil && len(d.FeatureNames) != c.Inputs {
		return nil, fmt.Errorf("metadata: %d feature names for %d inputs", len(d.FeatureNames), c.Inputs)
	}
	switch md["normalization"] {
	case "none", "":
	case "standardize":
		if d.Mean, err = vector(f, TensorMean, c.Inputs); err != nil {
			return nil, err
		}
		if d.Std, err = vector(f, TensorStd, c.Inputs); err != nil {
			return nil, err
		}
		for j, s := range d.Std {
			if !(s > 0) || math.IsInf(float64(s), 0) || math.IsNaN(float64(d.Mean[j])) || math.IsInf(float64(d.Mean[j]), 0) {
				return nil, fmt.Errorf("normalizer feature %d has mean %v and deviation %v (want finite, deviation > 0)", j, d.Mean[j], s)
			}
		}
	default:
		return nil, fmt.Errorf("metadata: unknown normalization %q (valid: none, standardize)", md["normalization"])
	}
	ints := map[string]*int{TensorEpoch: &c.Epoch, TensorStepInEpoch: &c.StepInEpoch, TensorOptimizerSteps: &c.OptimizerSteps}
	for name, dst := range ints {
		t, ok := f.Tensor(name)
		if !ok {
			return nil, fmt.Errorf("no tensor %s", name)
		}
		v, err := t.Int64s()
		if err != nil || len(v) != 1 || v[0] < 0 || v[0] > math.MaxInt32 {
			return nil, fmt.Errorf("tensor %s must be one I64 in [0, 2^31)", name)
		}
		*dst = int(v[0])
	}
	if t, ok := f.Tensor(TensorEpochLossSum); !ok || t.DType != safetensors.F64 || len(t.Data) != 8 {
		return nil, fmt.Errorf("tensor %s must be one F64", TensorEpochLossSum)
	} else {
		c.EpochLossSum = math.Float64frombits(binary.LittleEndian.Uint64(t.Data))
	}
	t, ok := f.Tensor(TensorRNG)
	if !ok || t.DType != safetensors.U8 {
		return nil, fmt.Errorf("no U8 tensor %s", TensorRNG)
	}
	if err := new(rand.PCG).UnmarshalBinary(t.Data); err != nil {
		return nil, fmt.Errorf("tensor %s: %w", TensorRNG, err)
	}
	c.rng = t.Data
	steps := (min(d.TrainRows, math.MaxInt32) + min(cfg.Batch, math.MaxInt32) - 1) / cfg.Batch
	if d.TrainRows < 1 || d.TrainRows > math.MaxInt32 || c.StepInEpoch >= steps && c.StepInEpoch > 0 {
		return nil, fmt.Errorf("step_in_epoch %d outside the %d steps of an epoch of %d rows", c.StepInEpoch, steps, d.TrainRows)
	}
	// The expected tensors follow from the spec alone: no backend needed.
	spec, _ := cfg.Spec()
	outputs := c.Classes
	if len(cfg.Vars) > 0 {
		// A joint model's layers are its trunk and the heads of all its
		// variables (sum of Vars outputs), then the pairwise tables.
		states, _ := JointStates(cfg.Vars)
		if states != c.Classes {
			return nil, fmt.Errorf("metadata: vars %v make %d joint answers, classes is %d", cfg.Vars, states, c.Classes)
		}
		outputs = 0
		pairs := 0
		for i, k := range cfg.Vars {
			outputs += k
			for _, k2 := range cfg.Vars[i+1:] {
				pairs += k * k2
			}
		}
		if !cfg.NoPairwise && pairs > 0 {
			if err := checkShape(f, "pairwise.P", []int{1, pairs}); err != nil {
				return nil, err
			}
		}
	}
	in := c.Inputs
	if spec.Embed > 0 {
		// A CBOW model (cbow.go): the table, then layers on Embed inputs.
		if err := checkShape(f, TensorName(CBOWTable), []int{c.Classes, spec.Embed}); err != nil {
			return nil, err
		}
		in = spec.Embed
	}
	for l, out := range append(append([]int(nil), spec.Hidden...), outputs) {
		if err := checkShape(f, fmt.Sprintf("layers.%d.weight", l), []int{out, in}); err != nil {
			return nil, err
		}
		if err := checkShape(f, fmt.Sprintf("layers.%d.bias", l), []int{out}); err != nil {
			return nil, err
		}
		in = out
	}
	if _, ok := f.Tensor(fmt.Sprintf("layers.%d.weight", len(spec.Hidden)+1)); ok {
		return nil, fmt.Errorf("tensor layers.%d.weight is not part of the model %v", len(spec.Hidden)+1, spec)
	}
	if cfg.Chain {
		if err := checkChainTensors(f, c.Classes); err != nil {
			return nil, err
		}
		d.SeqColumn = md["seq_column"]
	}
	// Integrity last, so that a file of the wrong shape is named by what is
	// wrong with it rather than by a checksum.
	if err := verifyChecksums(f); err != nil {
		return nil, err
	}
	c.DataSHA256 = md[metaDataSHA256]
	for _, t := range f.Tensors {
		if t.DType != safetensors.F32 {
			continue
		}
		v, _ := t.Float32s()
		if err := nonFinite(t.Name, v); err != nil {
			return nil, fmt.Errorf("holds non-finite weights, so the run that wrote it had diverged and its model answers nothing: %w", err)
		}
	}
	return c, nil
}

func checkShape(f *safetensors.File, name string, shape []int) error {
	t, ok := f.Tensor(name)
	if !ok {
		return fmt.Errorf("no tensor %s", name)
	}
	if t.DType != safetensors.F32 || !slices.Equal(t.Shape, shape) {
		return fmt.Errorf("tensor %s is %s %v, the model needs F32 %v", name, t.DType, t.Shape, shape)
	}
	return nil
}

func vector(f *safetensors.File, name string, n int) ([]float32, error) {
	if err := checkShape(f, name, []int{n}); err != nil {
		return nil, err
	}
	t, _ := f.Tensor(name)
	return t.Float32s()
}

// Spec returns the model specification of the checkpoint.
func (c *Checkpoint) Spec() Spec {
	s, _ := c.Config.Spec() // validated by DecodeCheckpoint
	return s
}

// loadTensor uploads the tensor name into m, checking its size.
func (c *Checkpoint) loadTensor(b Backend, name string, m Mat) error {
	t, ok := c.file.Tensor(name)
	if !ok {
		return fmt.Errorf("no tensor %s", name)
	}
	v, err := t.Float32s()
	if err != nil {
		return err
	}
	if len(v) != m.Rows()*m.Cols() {
		return fmt.Errorf("tensor %s has shape %v, the model needs %dx%d", name, t.Shape, m.Rows(), m.Cols())
	}
	return b.Upload(m, v)
}

// NewModel builds the checkpoint's model on b with the saved weights, for
// evaluation and prediction.
func (c *Checkpoint) NewModel(b Backend) (EnergyModel, error) {
	// The initialization is overwritten; any rng will do.
	m, err := newConfiguredModel(b, c.Config, c.Spec(), c.Inputs, c.Classes, rand.New(rand.NewPCG(0, 0)))
	if err != nil {
		return nil, err
	}
	for _, p := range m.Params() {
		if err := c.loadTensor(b, TensorName(p.Name), p.Value); err != nil {
			_ = m.Free()
			return nil, fmt.Errorf("checkpoint %s: %w", c.Path, err)
		}
	}
	return m, nil
}

// Compatible reports, as an error naming both values, the first setting of
// cfg that differs from the checkpoint's, other than Epochs (a resumed run
// may train longer).
func (c *Checkpoint) Compatible(cfg Config) error {
	want := c.Config
	spec, err := cfg.Spec()
	if err != nil {
		return err
	}
	type diff struct{ what, got, saved string }
	var ds []diff
	add := func(what string, got, saved any) {
		g, s := fmt.Sprint(got), fmt.Sprint(saved)
		if g != s {
			ds = append(ds, diff{what, g, s})
		}
	}
	add("model", spec, c.Spec())
	add("joint variables", cfg.Vars, want.Vars)
	add("sampled loss", cfg.Sampled, want.Sampled)
	add("pairwise", !cfg.NoPairwise, !want.NoPairwise)
	add("chain model", cfg.Chain, want.Chain)
	add("loss", cfg.Loss, want.Loss)
	add("beta", cfg.Loss.Beta, want.Loss.Beta)
	add("margin", cfg.Loss.Margin, want.Loss.Margin)
	add("gamma", cfg.Loss.Gamma, want.Loss.Gamma)
	add("delta", cfg.Loss.Delta, want.Loss.Delta)
	add("optimizer", strings.ToLower(cfg.Optimizer.Name), strings.ToLower(want.Optimizer.Name))
	add("lr", cfg.Optimizer.LR, want.Optimizer.LR)
	add("momentum", cfg.Optimizer.Momentum, want.Optimizer.Momentum)
	add("adam beta1", cfg.Optimizer.Beta1, want.Optimizer.Beta1)
	add("adam beta2", cfg.Optimizer.Beta2, want.Optimizer.Beta2)
	add("adam eps", cfg.Optimizer.Eps, want.Optimizer.Eps)
	add("weight decay", cfg.Optimizer.WeightDecay, want.Optimizer.WeightDecay)
	add("batch", cfg.Batch, want.Batch)
	add("seed", cfg.Seed, want.Seed)
	add("reduction", cfg.Reduction, want.Reduction)
	add("lr schedule", cfg.Schedule, want.Schedule)
	add("early stopping", cfg.EarlyStop, want.EarlyStop)
	if len(ds) > 0 {
		return fmt.Errorf("%s %s contradicts the checkpoint %s, which has %s", ds[0].what, ds[0].got, c.Path, ds[0].saved)
	}
	return nil
}

// Restore loads the checkpoint into a trainer built (by NewTrainer) with a
// compatible configuration on the same training data: weights, optimizer
// state and steps, completed epochs and the shuffle state, so that Run
// continues exactly as the saved run would have.
func (c *Checkpoint) Restore(t *Trainer) error {
	if t.bt == nil {
		return errors.New("restore: trainer used after Close")
	}
	if err := c.Compatible(t.cfg); err != nil {
		return err
	}
	if t.Model.Inputs() != c.Inputs || t.Model.Classes() != c.Classes {
		return fmt.Errorf("the data has %d inputs and %d classes; the checkpoint %s was trained on %d and %d", t.Model.Inputs(), t.Model.Classes(), c.Path, c.Inputs, c.Classes)
	}
	if t.units() != c.Data.TrainRows {
		return fmt.Errorf("the training data has %d %s; the checkpoint %s was trained on %d (same data and --limit needed to resume)", t.units(), t.unitName(), c.Path, c.Data.TrainRows)
	}
	if c.Epoch > t.cfg.Epochs || c.Epoch == t.cfg.Epochs && c.StepInEpoch > 0 {
		return fmt.Errorf("the checkpoint %s has completed %d epochs, more than the %d asked for", c.Path, c.Epoch, t.cfg.Epochs)
	}
	if t.dataSHA256 == "" {
		t.dataSHA256 = DataFingerprint(t.train.Host)
	}
	if t.dataSHA256 != c.DataSHA256 && !c.AcceptOtherData {
		return fmt.Errorf("%w: the training data (%d rows of %d features, fingerprint %.12s) is not the data the checkpoint %s was trained on (fingerprint %.12s): same shape, other values", ErrOtherData, t.train.Host.N, t.train.Host.D, t.dataSHA256, c.Path, c.DataSHA256)
	}
	for _, p := range t.Model.Params() {
		if err := c.loadTensor(t.b, TensorName(p.Name), p.Value); err != nil {
			return fmt.Errorf("checkpoint %s: %w", c.Path, err)
		}
	}
	for _, s := range t.Optimizer.State() {
		if err := c.loadTensor(t.b, optimizerTensorName(s.Name), s.Mat); err != nil {
			return fmt.Errorf("checkpoint %s: %w", c.Path, err)
		}
	}
	if err := t.pcg.UnmarshalBinary(c.rng); err != nil {
		return fmt.Errorf("checkpoint %s: %w", c.Path, err)
	}
	t.epochRNG = append([]byte(nil), c.rng...)
	t.Optimizer.SetSteps(c.OptimizerSteps)
	t.epoch, t.done, t.doneLoss = c.Epoch, c.StepInEpoch, c.EpochLossSum
	t.early = c.early
	return nil
}

// Progress returns the completed epochs and the steps of the next epoch
// already taken (nonzero after Run stopped mid-epoch on a done context).
func (t *Trainer) Progress() (epochs, stepInEpoch int) { return t.epoch, t.done }

type earlyStopJSON struct {
	Monitor  string  `json:"monitor"`
	Patience int     `json:"patience"`
	MinDelta float64 `json:"min_delta"`
}

type earlyStateJSON struct {
	Best      float64 `json:"best"`
	BestEpoch int     `json:"best_epoch"`
	Stopped   bool    `json:"stopped"`
}

// EarlyStopped reports whether the checkpoint's run was ended by early
// stopping, and its best epoch.
func (c *Checkpoint) EarlyStopped() (stopped bool, bestEpoch int) {
	return c.early.stopped, c.early.bestEpoch
}
