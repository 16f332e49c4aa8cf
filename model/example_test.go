package model_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

// Train a small MLP with the hinge loss on Gaussian blobs and read the
// held-out accuracy and NLL after the last epoch. The backend is the swap
// point: device.New(driver) runs the same code on a GPU.
func ExampleNewTrainer() {
	all := dataset.Blobs(1200, 8, 4, 3, 1) // 1200 rows, 8 features, 4 classes
	train, test, err := all.Split(0.8, 1)
	if err != nil {
		log.Fatal(err)
	}
	b := cpu.New()
	defer b.Close()

	cfg := model.DefaultConfig()
	cfg.Model = "mlp:16"
	cfg.Loss = model.DefaultLoss(model.Hinge)
	cfg.Epochs, cfg.Batch, cfg.Optimizer.LR = 3, 32, 0.01
	tr, err := model.NewTrainer(b, cfg,
		&model.Data{X: train.X, Y: train.Y, N: train.N, D: train.D, Classes: train.Classes},
		&model.Data{X: test.X, Y: test.Y, N: test.N, D: test.D, Classes: test.Classes})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	results, err := tr.Run(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	last := results[len(results)-1]
	fmt.Printf("%d epochs on %d rows; test accuracy above 0.9: %v; test NLL below 0.3: %v\n",
		len(results), train.N, last.Eval.Accuracy > 0.9, last.Eval.NLL < 0.3)
	// Output: 3 epochs on 960 rows; test accuracy above 0.9: true; test NLL below 0.3: true
}

// The README's "As a library" program, verbatim (TestREADMEExample checks
// that it is): compiled by go test so the README cannot drift from the API,
// not run, since it trains on the full MNIST.
func Example_readme() {
	train, test, err := dataset.EmbeddedMNIST()
	if err != nil {
		log.Fatal(err)
	}
	b := cpu.New() // the one line to change: device.New(driver) for a GPU
	defer b.Close()

	cfg := model.DefaultConfig()
	cfg.Model = "mlp:256"
	cfg.Loss = model.DefaultLoss(model.Hinge)
	tr, err := model.NewTrainer(b, cfg,
		&model.Data{X: train.X, Y: train.Y, N: train.N, D: train.D, Classes: train.Classes},
		&model.Data{X: test.X, Y: test.Y, N: test.N, D: test.D, Classes: test.Classes})
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	results, err := tr.Run(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	last := results[len(results)-1]
	fmt.Printf("test accuracy %.4f, NLL %.4f\n", last.Eval.Accuracy, last.Eval.NLL)
}

// TestREADMEExample: the Go program in README.md is Example_readme with
// main for a name, and imports nothing this file does not.
func TestREADMEExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "```go\n")
	block, _, ok2 := strings.Cut(block, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no ```go block")
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(block, "func main() {")
	if !ok {
		t.Fatalf("the README's Go block has no func main:\n%s", block)
	}
	if !strings.Contains(string(src), "func Example_readme() {"+body) {
		t.Errorf("README.md's main differs from Example_readme in model/example_test.go; README:\n%s", body)
	}
	imports, _, _ := strings.Cut(block, ")")
	for _, line := range strings.Split(imports, "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, `"`) && !strings.Contains(string(src), "\t"+l+"\n") {
			t.Errorf("README.md imports %s, which example_test.go does not", l)
		}
	}
}
