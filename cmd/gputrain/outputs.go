package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/internal/atomicfile"
	"github.com/gputrain/gputrain/internal/filelock"
	"github.com/gputrain/gputrain/internal/inputfile"
	"github.com/gputrain/gputrain/internal/metrics"
	"github.com/gputrain/gputrain/model/safetensors"
)

// The files train writes are claimed before any data is loaded:
//
//   - none is an input of the run (the training or test data, a file of an
//     IDX directory, the resumed checkpoint for --metrics and --plot), and no
//     two are the same file;
//   - an existing one must be a regular file of its own kind (a gputrain
//     checkpoint for --save, a metrics file for --metrics, a PNG for
//     --plot): never a symbolic link, FIFO, device or anyone else's file;
//   - an existing one that another run wrote is replaced only with
//     --overwrite (resuming a checkpoint writes it again, without the flag);
//   - each is locked (internal/filelock) for the whole run, so a second
//     writer is refused at its start, and the temporary files a killed
//     writer left beside it are removed.

// output is one file a train run writes.
type output struct {
	flag, path string
	kind       outputKind
}

type outputKind int

const (
	outCheckpoint outputKind = iota
	outMetrics
	outPlot
)

func (k outputKind) String() string {
	return [...]string{"checkpoint", "metrics file", "plot"}[k]
}

// claimed holds the locks of a run's outputs; release them when it ends.
type claimed struct{ locks []*filelock.Lock }

func (c *claimed) release() {
	if c == nil {
		return
	}
	for _, l := range c.locks {
		_ = l.Release()
	}
	c.locks = nil
}

// inputPaths lists the files the run reads: the --data file (or every file
// of an IDX directory), the --test file and the resumed checkpoint.
func (o *runOptions) inputPaths() []string {
	var in []string
	add := func(p string) {
		if p == "" {
			return
		}
		st, err := os.Stat(p)
		if err == nil && st.IsDir() {
			ents, _ := os.ReadDir(p)
			for _, e := range ents {
				in = append(in, filepath.Join(p, e.Name()))
			}
			return
		}
		in = append(in, p)
	}
	add(o.data)
	add(o.testPath)
	if o.resume != nil {
		in = append(in, o.resume.Path)
	}
	return in
}

// sameFile reports whether a and b name one file: the same inode when both
// exist (hard links, other spellings), else the same absolute path with its
// directory's links resolved.
func sameFile(a, b string) bool {
	sa, ea := os.Stat(a)
	sb, eb := os.Stat(b)
	if ea == nil && eb == nil {
		return os.SameFile(sa, sb)
	}
	return canonical(a) == canonical(b)
}

func canonical(p string) string {
	abs, err := filepath.Abs(p)
	if err != nil {
		return filepath.Clean(p)
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		return filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}

var pngMagic = []byte("\x89PNG\r\n\x1a\n")

// claimOutputs checks and locks every file o's run writes (see above).
func claimOutputs(c *cli.Context, o *runOptions) (*claimed, error) {
	var outs []output
	if o.save != "" {
		outs = append(outs, output{"--save", o.save, outCheckpoint})
	}
	if o.best != "" {
		outs = append(outs, output{"the best checkpoint of --early-stop", o.best, outCheckpoint})
	}
	if p := c.String("metrics"); p != "" {
		outs = append(outs, output{"--metrics", p, outMetrics})
	}
	if p := c.String("plot"); p != "" {
		outs = append(outs, output{"--plot", p, outPlot})
	}
	inputs := o.inputPaths()
	for i, out := range outs {
		for _, in := range inputs {
			if !sameFile(out.path, in) {
				continue
			}
			if o.resume != nil && in == o.resume.Path && out.kind == outCheckpoint && out.flag == "--save" {
				continue // resuming writes its checkpoint again
			}
			return nil, fmt.Errorf("%s %s is an input of this run (%s): refusing to write over it", out.flag, out.path, in)
		}
		for _, prev := range outs[:i] {
			if sameFile(out.path, prev.path) {
				return nil, usagef("%s and %s name the same file %s: give each its own", prev.flag, out.flag, out.path)
			}
		}
		if err := checkExistingOutput(out, o, c.Bool("overwrite")); err != nil {
			return nil, err
		}
	}
	cl := &claimed{}
	for _, out := range outs {
		l, err := filelock.Acquire(out.path, out.kind.String())
		if err != nil {
			cl.release()
			return nil, err
		}
		cl.locks = append(cl.locks, l)
		if _, err := atomicfile.CleanStale(out.path); err != nil {
			cl.release()
			return nil, fmt.Errorf("%s %s: removing the temporary files of an interrupted run: %w", out.flag, out.path, err)
		}
	}
	return cl, nil
}

// checkExistingOutput refuses an existing destination that is not a
// regular file of out's kind, or that another run wrote (without
// --overwrite).
func checkExistingOutput(out output, o *runOptions, overwrite bool) error {
	st, err := os.Lstat(out.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", out.flag, out.path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s %s is %s: gputrain writes only regular files, and never through a link or into a device", out.flag, out.path, inputfile.Kind(st.Mode()))
	}
	resumed := o.resume != nil && sameFile(out.path, o.resume.Path)
	switch out.kind {
	case outCheckpoint:
		md, err := safetensors.ReadMetadata(out.path)
		if err != nil || !strings.HasPrefix(md["format"], "gputrain-checkpoint/") {
			return fmt.Errorf("%s %s exists and is not a gputrain checkpoint: gputrain writes only over its own checkpoints; choose another file", out.flag, out.path)
		}
		if resumed || overwrite {
			return nil
		}
		what := md["model"]
		if d := md["dataset"]; d != "" {
			what += " on " + d
		}
		return fmt.Errorf("%s %s holds the checkpoint of another run (%s): to keep it, --save another file; to continue it, --resume %s; to replace it, add --overwrite", out.flag, out.path, what, out.path)
	case outMetrics:
		if !metrics.IsMetricsFile(out.path) {
			return fmt.Errorf("%s %s exists and is not a gputrain metrics file: choose another file", out.flag, out.path)
		}
		if o.resume != nil || overwrite || st.Size() == 0 {
			return nil // a resumed run appends to it
		}
		return fmt.Errorf("%s %s holds the metrics of another run: add --overwrite to replace them, or choose another file", out.flag, out.path)
	case outPlot:
		head := make([]byte, len(pngMagic))
		if f, err := os.Open(out.path); err == nil {
			_, _ = f.Read(head)
			f.Close()
		}
		if !bytes.Equal(head, pngMagic) {
			return fmt.Errorf("%s %s exists and is not a PNG image: choose another file", out.flag, out.path)
		}
		if o.resume != nil || overwrite {
			return nil
		}
		return fmt.Errorf("%s %s holds the plot of another run: add --overwrite to replace it, or choose another file", out.flag, out.path)
	}
	return nil
}
