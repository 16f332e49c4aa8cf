package dataset_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gputrain/gputrain/dataset"
)

func ExampleBlobs() {
	s := dataset.Blobs(300, 4, 3, 2.5, 1)
	train, test, _ := s.Split(0.8, 7)
	norm, _ := dataset.FitNormalizer(train) // statistics of the training part only
	norm.Apply(train)
	norm.Apply(test)
	fmt.Println(train.N, test.N, train.D, train.Classes, train.Histogram()[0]+test.Histogram()[0])
	// Output: 240 60 4 3 100
}

func ExampleWriteIDX() {
	dir, _ := os.MkdirTemp("", "idx")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "labels-idx1-ubyte.gz") // .gz: written compressed
	dataset.WriteIDX(path, dataset.IDXUint8, []int{4}, []float64{7, 2, 1, 0})
	x, err := dataset.ReadIDX(path) // compression detected from the content
	fmt.Println(x.Type, x.Dims, x.Float64s(), err)
	// Output: ubyte [4] [7 2 1 0] <nil>
}

func ExampleLoadCSV() {
	dir, _ := os.MkdirTemp("", "csv")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "iris.csv")
	os.WriteFile(path, []byte("length,width,species\n5.1,3.5,setosa\n7.0,3.2,versicolor\n4.9,3.0,setosa\n"), 0o644)
	s, _ := dataset.LoadCSV(path, dataset.CSVOptions{Label: "species"})
	fmt.Println(s.N, s.D, s.Y, s.ClassNames)

	os.WriteFile(path, []byte("label,a\n0,1\n1,oops\n"), 0o644)
	_, err := dataset.LoadCSV(path, dataset.CSVOptions{})
	fmt.Println(err.Error()[len(dir)+1:])
	// Output:
	// 3 2 [0 1 0] [setosa versicolor]
	// iris.csv:3:2 (column "a"): bad number "oops"
}
