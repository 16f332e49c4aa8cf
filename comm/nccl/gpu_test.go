//go:build cuda

package nccl

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/gputrain/gputrain/comm"
	"github.com/gputrain/gputrain/comm/commtest"
	"github.com/gputrain/gputrain/dataset"
	"github.com/gputrain/gputrain/device"
	"github.com/gputrain/gputrain/device/cuda"
	"github.com/gputrain/gputrain/model"
)

// The GPU half of the tests (scripts/gpu-check.sh runs them on a lent GPU;
// they skip elsewhere, saying why): the fold kernel against the CPU, a
// one-rank NCCL communicator end to end, training through it bitwise as
// without it, and N ranks when N GPUs are visible.

func requireGPU(t *testing.T) {
	t.Helper()
	if err := cuda.Available(); err != nil {
		t.Skipf("needs a GPU (run on a GPU machine: scripts/gpu-check.sh run): %v", err)
	}
}

// openNCCL finds NCCL; without it the test skips, unless $GPUTRAIN_NCCL
// names a library (as the GPU check does), when failing to load is a failure.
func openNCCL(t *testing.T) *Library {
	t.Helper()
	l, err := Open()
	if err != nil {
		if os.Getenv(EnvLibrary) != "" {
			t.Fatal(err)
		}
		t.Skipf("no NCCL here (scripts/gpu-check.sh points %s at PyTorch's copy): %v", EnvLibrary, err)
	}
	t.Logf("NCCL %s from %s", l.Version(), l.Path())
	return l
}

func TestGPUSumSlotsIsTheCPUFold(t *testing.T) {
	requireGPU(t)
	g, err := openGPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer g.close()
	leave, err := g.enter()
	if err != nil {
		t.Fatal(err)
	}
	defer leave()
	for _, nslots := range []int{1, 2, 3, 8} {
		for _, n := range []int{1, 31, 1000, 100003, 1 << 22} {
			stride := n + 5
			host := make([]float32, nslots*stride)
			for i := range host {
				host[i] = float32(math.NaN()) // the padding: read only if the kernel strays
			}
			parts := make([][]float32, nslots)
			for s := range parts {
				parts[s] = commtest.Input(n+s, s, n)
				copy(host[s*stride:], parts[s])
			}
			want := make([]float32, n)
			comm.SumRanks(want, parts)
			slots, err := g.alloc(4 * len(host))
			if err != nil {
				t.Fatal(err)
			}
			dst, err := g.alloc(4 * (n + 16))
			if err != nil {
				t.Fatal(err)
			}
			g.upload(slots, f32bytes(host))
			guard := bytes.Repeat([]byte{0xCD}, 64)
			g.upload(dst+uintptr(4*n), guard)
			if err := g.sumSlots(dst, slots, n, nslots, stride); err != nil {
				t.Fatal(err)
			}
			if err := g.sync(); err != nil {
				t.Fatal(err)
			}
			out := make([]byte, 4*n+64)
			g.download(out, dst)
			g.free(slots)
			g.free(dst)
			for i, w := range want {
				got := math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:]))
				if math.Float32bits(got) != math.Float32bits(w) {
					t.Fatalf("%d slots of %d floats: element %d = %v, the CPU fold %v", nslots, n, i, got, w)
				}
			}
			if !bytes.Equal(out[4*n:], guard) {
				t.Fatalf("%d slots of %d floats: the kernel wrote past n", nslots, n)
			}
		}
	}
}

func f32bytes(f []float32) []byte {
	b := make([]byte, 4*len(f))
	for i, x := range f {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func TestGPUOneRankNCCL(t *testing.T) {
	requireGPU(t)
	l := openNCCL(t)
	c, err := Bootstrap(comm.Single(), func() (*Library, error) { return l, nil }, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Log(c.Describe())
	// One rank: the all-reduce is the identity, bitwise (copy, fold of one
	// slot); the broadcast is a real NCCL kernel.
	if err := checkDeviceAllReduce(c); err != nil {
		t.Fatal(err)
	}
	src, _ := c.g.alloc(4096)
	dst, _ := c.g.alloc(4096)
	defer c.g.free(src)
	defer c.g.free(dst)
	data := make([]byte, 4096)
	for i := range data {
		data[i] = byte(i * 7)
	}
	c.g.upload(src, data)
	c.g.upload(dst, make([]byte, 4096))
	if err := c.BroadcastDevice(src, dst, 4096, 0); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 4096)
	c.g.download(out, dst)
	if !bytes.Equal(out, data) {
		t.Fatal("ncclBroadcast on one rank did not copy src to dst")
	}
}

// TestGPUTrainingThroughNCCL trains on the cuda backend with a one-rank
// NCCL communicator (the gradients go through AllReduceMats: pointers,
// sizes, stream order) and without one: the weights must be bitwise equal.
func TestGPUTrainingThroughNCCL(t *testing.T) {
	requireGPU(t)
	l := openNCCL(t)
	s := dataset.Blobs(3001, 33, 11, 2.0, 5)
	train := &model.Data{X: s.X, Y: s.Y, N: s.N, D: s.D, Classes: s.Classes}
	cfg := model.DefaultConfig()
	cfg.Model, cfg.Epochs, cfg.Batch, cfg.Optimizer.LR = "mlp:64", 2, 100, 1e-2
	run := func(useNCCL bool) ([][]float32, error) {
		drv, err := cuda.New(0)
		if err != nil {
			return nil, err
		}
		be, err := device.New(drv)
		if err != nil {
			drv.Close()
			return nil, err
		}
		defer be.Close()
		var c comm.Comm
		if useNCCL {
			nc, err := Bootstrap(comm.Single(), func() (*Library, error) { return l, nil }, 0)
			if err != nil {
				return nil, err
			}
			defer nc.Close()
			if !nc.Handles(be) {
				return nil, errors.New("the NCCL communicator does not handle the cuda backend")
			}
			c = nc
		}
		tr, err := model.NewDistributedTrainer(be, cfg, c, train, nil)
		if err != nil {
			return nil, err
		}
		defer tr.Close()
		if _, err := tr.Run(context.Background()); err != nil {
			return nil, err
		}
		var ws [][]float32
		for _, p := range tr.Model.Params() {
			v := make([]float32, p.Size())
			if err := be.Download(v, p.Value); err != nil {
				return nil, err
			}
			ws = append(ws, v)
		}
		return ws, nil
	}
	want, err := run(false)
	if err != nil {
		t.Fatal(err)
	}
	got, err := run(true)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		for j := range want[i] {
			if math.Float32bits(got[i][j]) != math.Float32bits(want[i][j]) {
				t.Fatalf("param %d[%d]: %v through NCCL, %v without", i, j, got[i][j], want[i][j])
			}
		}
	}
}

// TestGPUMultiRank runs one rank per visible GPU (goroutines of this
// process, each on its own GPU): bitwise the rank-order sum.
func TestGPUMultiRank(t *testing.T) {
	requireGPU(t)
	infos, err := cuda.Devices()
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) < 2 {
		t.Skipf("%d GPU visible: the multi-rank test needs 2 or more (NCCL refuses two ranks on one GPU)", len(infos))
	}
	l := openNCCL(t)
	hosts := comm.Local(len(infos))
	err = commtest.RunGroup(hosts, func(h comm.Comm) error {
		c, err := Bootstrap(h, func() (*Library, error) { return l, nil }, h.Rank())
		if err != nil {
			return err
		}
		defer c.Close()
		if err := checkDeviceAllReduce(c); err != nil {
			return fmt.Errorf("GPU %d: %w", h.Rank(), err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ranks on %d GPUs: bitwise the rank-order sum", len(infos), len(infos))
}
