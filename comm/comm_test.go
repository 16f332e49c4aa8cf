package comm_test

import (
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gputrain/gputrain/comm"
	"github.com/gputrain/gputrain/comm/commtest"
)

func TestSumRanksIsTheRankOrderFold(t *testing.T) {
	// 2^24 + 1 rounds to 2^24 in float32: the order of the additions shows.
	big := float32(1 << 24)
	parts := [][]float32{{big}, {1}, {1}, {-big}}
	got := make([]float32, 1)
	comm.SumRanks(got, parts)
	if got[0] != 0 { // ((2^24 + 1) + 1) - 2^24 = (2^24 + 1) - 2^24 ... each +1 is lost
		t.Fatalf("fold of %v = %v, want 0 (each +1 lost to rounding)", parts, got[0])
	}
	comm.SumRanks(got, [][]float32{{1}, {1}, {big}, {-big}})
	if got[0] != 0 { // (2 + 2^24) - 2^24 = 2
		if got[0] != 2 {
			t.Fatalf("fold of 1,1,2^24,-2^24 = %v, want 2", got[0])
		}
	} else {
		t.Fatal("fold of 1,1,2^24,-2^24 gave 0: not a left fold")
	}
	// dst may be parts[0].
	a, b := []float32{1, 2, 3}, []float32{10, 20, 30}
	comm.SumRanks(a, [][]float32{a, b})
	if !slices.Equal(a, []float32{11, 22, 33}) {
		t.Fatalf("in place: %v", a)
	}
}

func TestShardCoversTheBatchInRankOrder(t *testing.T) {
	for size := 1; size <= 9; size++ {
		for b := 0; b <= 40; b++ {
			batch := make([]int, b)
			for i := range batch {
				batch[i] = i
			}
			var union []int
			lo, hi := b, 0
			for r := 0; r < size; r++ {
				s := comm.Shard(batch, size, r)
				union = append(union, s...)
				lo, hi = min(lo, len(s)), max(hi, len(s))
				if len(s) > comm.MaxShard(b, size) {
					t.Fatalf("b=%d size=%d rank %d: %d rows > MaxShard %d", b, size, r, len(s), comm.MaxShard(b, size))
				}
			}
			if !slices.Equal(union, batch) {
				t.Fatalf("b=%d size=%d: shards in rank order are %v", b, size, union)
			}
			if hi-lo > 1 {
				t.Fatalf("b=%d size=%d: shard sizes from %d to %d", b, size, lo, hi)
			}
		}
	}
}

func TestSpanCoversTheBuffer(t *testing.T) {
	for size := 1; size <= 9; size++ {
		for n := 0; n <= 40; n++ {
			next := 0
			for r := 0; r < size; r++ {
				lo, hi := comm.Span(n, size, r)
				if lo != next || hi < lo || hi-lo > comm.Chunk(n, size) {
					t.Fatalf("n=%d size=%d rank %d: span [%d,%d) after %d", n, size, r, lo, hi, next)
				}
				next = hi
			}
			if next != n {
				t.Fatalf("n=%d size=%d: spans end at %d", n, size, next)
			}
		}
	}
}

func TestSingle(t *testing.T) {
	if err := commtest.Check(comm.Single()); err != nil {
		t.Fatal(err)
	}
	if err := comm.Single().Broadcast(nil, 1); err == nil {
		t.Fatal("broadcast from rank 1 of a single process: no error")
	}
}

func TestLocalConformance(t *testing.T) {
	for _, n := range []int{1, 2, 3, 4, 7} {
		if err := commtest.CheckGroup(comm.Local(n)); err != nil {
			t.Errorf("%d ranks: %v", n, err)
		}
	}
}

// reversed sums in reverse rank order: a plausible bug (or an MPI library's
// choice) that the conformance check must catch.
type reversed struct {
	comm.Comm
	all []comm.Comm
}

func (r reversed) AllReduceSum(buf []float32) error {
	n := r.Size()
	// Gather every rank's buffer through broadcasts, then fold backwards.
	parts := make([][]float32, n)
	for root := 0; root < n; root++ {
		b := make([]byte, 4*len(buf))
		if root == r.Rank() {
			for i, x := range buf {
				u := math.Float32bits(x)
				b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
			}
		}
		if err := r.Broadcast(b, root); err != nil {
			return err
		}
		p := make([]float32, len(buf))
		for i := range p {
			p[i] = math.Float32frombits(uint32(b[4*i]) | uint32(b[4*i+1])<<8 | uint32(b[4*i+2])<<16 | uint32(b[4*i+3])<<24)
		}
		parts[n-1-root] = p
	}
	comm.SumRanks(buf, parts)
	return nil
}

func TestConformanceCatchesAnotherOrder(t *testing.T) {
	cs := comm.Local(3)
	rs := make([]comm.Comm, len(cs))
	for i, c := range cs {
		rs[i] = reversed{Comm: c}
	}
	err := commtest.CheckGroup(rs)
	if err == nil || !strings.Contains(err.Error(), "rank-order sum") {
		t.Fatalf("a reversed-order all-reduce passed the check: %v", err)
	}
}

func within(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { fn(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still blocked after %v", what, d)
	}
}

func TestLocalDisagreementFailsEveryRank(t *testing.T) {
	cs := comm.Local(3)
	var errs [3]error
	within(t, 10*time.Second, "mismatched collectives", func() {
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Go(func() {
				n := 5
				if i == 2 {
					n = 6 // rank 2 all-reduces a longer buffer
				}
				errs[i] = c.AllReduceSum(make([]float32, n))
			})
		}
		wg.Wait()
	})
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "rank 2 all-reduce of 6 floats") {
			t.Errorf("rank %d: %v", i, err)
		}
	}
}

// checkLeaving has the last rank of cs leave while the others wait in an
// all-reduce: they must all return an error naming it, not hang.
func checkLeaving(t *testing.T, cs []comm.Comm) {
	t.Helper()
	last := len(cs) - 1
	errs := make([]error, last)
	within(t, 10*time.Second, "ranks waiting for one that closed", func() {
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { errs[i] = cs[i].AllReduceSum(make([]float32, 4)) })
		}
		time.Sleep(50 * time.Millisecond)
		cs[last].Close() // the last rank fails and leaves
		wg.Wait()
	})
	for i, err := range errs {
		if !errors.Is(err, comm.ErrClosed) || !strings.Contains(err.Error(), fmt.Sprintf("rank %d left the group", last)) {
			t.Errorf("rank %d: %v", i, err)
		}
	}
}

func TestLocalCloseReleasesTheOthers(t *testing.T) {
	cs := comm.Local(3)
	checkLeaving(t, cs)
	if err := cs[0].Barrier(); !errors.Is(err, comm.ErrClosed) {
		t.Errorf("a collective after the group closed: %v", err)
	}
}

// dialGroup connects size TCP ranks at addr, each in its own goroutine (rank
// 0 last, so the others' retries are exercised).
func dialGroup(t *testing.T, addr string, size int, job string) []comm.Comm {
	t.Helper()
	cs := make([]comm.Comm, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := size - 1; r >= 0; r-- {
		wg.Go(func() { cs[r], errs[r] = comm.DialTCP(addr, r, size, job, 20*time.Second) })
		if r == 1 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	return cs
}

func TestTCPConformance(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5} {
		cs := dialGroup(t, commtest.FreeAddr(t), n, "job-a")
		if err := commtest.CheckGroup(cs); err != nil {
			t.Errorf("%d ranks: %v", n, err)
		}
		for _, c := range cs {
			c.Close()
		}
	}
}

func TestTCPRefusesStrangers(t *testing.T) {
	addr := commtest.FreeAddr(t)
	done := make(chan error, 1)
	var root comm.Comm
	go func() {
		var err error
		root, err = comm.DialTCP(addr, 0, 2, "job-a", 20*time.Second)
		done <- err
	}()
	// Another job, a wrong size and a wrong rank are turned away with the reason...
	for _, tc := range []struct {
		rank, size int
		job, want  string
	}{
		{1, 2, "job-b", `its job "job-b" is not this group's "job-a"`},
		{1, 3, "job-a", "it is rank 1 of 3 ranks, this group has 2"},
	} {
		_, err := comm.DialTCP(addr, tc.rank, tc.size, tc.job, 20*time.Second)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("rank %d of %d job %q: %v, want %q", tc.rank, tc.size, tc.job, err, tc.want)
		}
	}
	// ... as is a client that is not a rank at all ...
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	conn.Close()
	// ... and the real rank still joins.
	leaf, err := comm.DialTCP(addr, 1, 2, "job-a", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := commtest.CheckGroup([]comm.Comm{root, leaf}); err != nil {
		t.Fatal(err)
	}
	root.Close()
	leaf.Close()
}

func TestTCPDeadlineAndClose(t *testing.T) {
	// No rank 0: a leaf gives up at its deadline, naming the address.
	addr := commtest.FreeAddr(t)
	start := time.Now()
	_, err := comm.DialTCP(addr, 1, 2, "", 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "no rank 0 at "+addr) || time.Since(start) > 5*time.Second {
		t.Fatalf("dial without rank 0: %v after %v", err, time.Since(start))
	}
	// Rank 0 without the others gives up too.
	_, err = comm.DialTCP(commtest.FreeAddr(t), 0, 3, "", 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "1 of 3 ranks joined") {
		t.Fatalf("rank 0 alone: %v", err)
	}
	// A rank that leaves makes the collective fail on the others, naming it.
	cs := dialGroup(t, commtest.FreeAddr(t), 3, "")
	checkLeaving(t, cs)
	cs[0].Close()
	cs[1].Close()
}

func TestFailedAndRankList(t *testing.T) {
	cs := comm.Local(4)
	got := make([][]int, 4)
	err := commtest.RunGroup(cs, func(c comm.Comm) error {
		var err error
		got[c.Rank()], err = comm.Failed(c, c.Rank() == 1 || c.Rank() == 3)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for r, g := range got {
		if !slices.Equal(g, []int{1, 3}) {
			t.Fatalf("rank %d: failed ranks %v", r, g)
		}
	}
	for _, tc := range []struct {
		in   []int
		want string
	}{{nil, ""}, {[]int{0}, "0"}, {[]int{1, 3}, "1 and 3"}, {[]int{2, 10, 123}, "2, 10 and 123"}} {
		if s := comm.RankList(tc.in); s != tc.want {
			t.Errorf("RankList(%v) = %q, want %q", tc.in, s, tc.want)
		}
	}
}
