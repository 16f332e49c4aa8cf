package model_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/gputrain/gputrain/cpu"
	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/model"
)

// Train on scikit-learn's iris file, save a checkpoint with the features'
// standardization and the class names, then load it and answer raw rows
// (centimetres, as in the file): Predict applies the standardization.
func ExampleCheckpoint_Predict() {
	iris, err := dataset.LoadCSV(filepath.Join("..", "dataset", "testdata", "sklearn", "iris.csv"), dataset.CSVOptions{})
	if err != nil {
		log.Fatal(err)
	}
	norm, err := dataset.FitNormalizer(iris)
	if err != nil {
		log.Fatal(err)
	}
	if err := norm.Apply(iris); err != nil {
		log.Fatal(err)
	}
	b := cpu.New()
	defer b.Close()
	cfg := model.DefaultConfig()
	cfg.Epochs, cfg.Batch, cfg.Optimizer.LR = 60, 16, 0.01
	tr, err := model.NewTrainer(b, cfg, &model.Data{X: iris.X, Y: iris.Y, N: iris.N, D: iris.D, Classes: iris.Classes}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Run(context.Background()); err != nil {
		log.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "iris")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "iris.safetensors")
	info := model.DataInfo{Dataset: "iris", ClassNames: iris.ClassNames, TrainRows: iris.N, Mean: norm.Mean, Std: norm.Std}
	if err := tr.SaveCheckpoint(path, info); err != nil {
		log.Fatal(err)
	}

	ck, err := model.ReadCheckpoint(path)
	if err != nil {
		log.Fatal(err)
	}
	preds, err := ck.Predict(b, [][]float32{
		{5.1, 3.5, 1.4, 0.2}, // the file's first row: setosa
		{6.4, 3.2, 4.5, 1.5}, // row 52: versicolor
		{7.7, 3.8, 6.7, 2.2}, // row 118: virginica
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range preds {
		fmt.Printf("%s (class %d), P above 0.5: %v\n", p.Name, p.Answer, p.Probability > 0.5)
	}
	// Output:
	// setosa (class 0), P above 0.5: true
	// versicolor (class 1), P above 0.5: true
	// virginica (class 2), P above 0.5: true
}
