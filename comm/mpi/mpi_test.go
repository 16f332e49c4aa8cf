//go:build mpi

package mpi_test

import (
	"fmt"
	"math"
	"os"
	"testing"

	"github.com/gputrain/gputrain/comm"
	"github.com/gputrain/gputrain/comm/commtest"
	"github.com/gputrain/gputrain/comm/mpi"
)

// The tests need every rank: `make test-mpi` runs this binary under
// mpirun -np 1, 2 and 3. Started alone they skip, saying so.
var world *mpi.World

func TestMain(m *testing.M) {
	if !mpi.Launched() {
		fmt.Println("comm/mpi: not started by mpirun: the MPI tests skip (run them with `make test-mpi`)")
		os.Exit(m.Run())
	}
	var err error
	if world, err = mpi.Init(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	code := m.Run()
	if code != 0 {
		world.Abort(code)
	}
	if err := world.Finalize(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(code)
}

func need(t *testing.T) {
	if world == nil {
		t.Skip("not started by mpirun (see TestMain)")
	}
}

func TestConformance(t *testing.T) {
	need(t)
	if err := commtest.Check(world); err != nil {
		t.Fatal(err)
	}
	t.Logf("rank %d of %d over %s: conformance passed", world.Rank(), world.Size(), world.Describe())
}

// TestLargeBuffer all-reduces a gradient-sized buffer (the MNIST mlp:256's
// 203,530 floats plus the trainer's tail) twice: bitwise the reference,
// and the scratch reuse between calls does not leak one call into the next.
func TestLargeBuffer(t *testing.T) {
	need(t)
	for round, n := range []int{203530 + 1 + world.Size(), 203530 + 1 + world.Size(), 7} {
		buf := commtest.Input(1000+round, world.Rank(), n)
		if err := world.AllReduceSum(buf); err != nil {
			t.Fatal(err)
		}
		want := commtest.Expected(1000+round, world.Size(), n)
		for i := range want {
			if math.Float32bits(buf[i]) != math.Float32bits(want[i]) {
				t.Fatalf("round %d, %d floats: element %d = %v, want %v", round, n, i, buf[i], want[i])
			}
		}
	}
}

func TestBroadcastFromEveryRankAgrees(t *testing.T) {
	need(t)
	// What the trainer does with it: each rank's digest, compared.
	for root := 0; root < world.Size(); root++ {
		b := []byte(fmt.Sprintf("rank %02d", world.Rank()))
		if err := world.Broadcast(b, root); err != nil {
			t.Fatal(err)
		}
		if string(b) != fmt.Sprintf("rank %02d", root) {
			t.Fatalf("broadcast from %d gave %q", root, b)
		}
	}
	if err := world.Broadcast(make([]byte, 1), world.Size()); err == nil {
		t.Fatal("broadcast from a rank outside the world: no error")
	}
}

var _ comm.Comm = world

// BenchmarkAllReduce times the rank-order all-reduce at the gradient sizes
// of docs/DISTRIBUTED.md (plus the trainer's tail of 1+N floats). Every rank
// must run the same iterations: use a fixed -test.benchtime=Nx.
func BenchmarkAllReduce(b *testing.B) {
	if world == nil {
		b.Skip("not started by mpirun (see TestMain)")
	}
	for _, tc := range []struct {
		name string
		n    int
	}{{"linear-7850", 7850}, {"mlp256-203530", 203530}, {"head-K131072-D256", 131072*256 + 131072}} {
		n := tc.n + 1 + world.Size()
		buf := commtest.Input(1, world.Rank(), n)
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(4 * n))
			for i := 0; i < b.N; i++ {
				if err := world.AllReduceSum(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
