package device

import "testing"

// The launch plans chosen at the sizes the GPU targets are judged at (too
// large to run through the emulator): which GEMM tile, energy-loss plan,
// block and shared memory, and column-sum stages. An H100 allows 227 KiB
// of shared memory per block with opt-in.
func TestPlansAtTargetSizes(t *testing.T) {
	const h100Shared = 232448
	h100 := &Backend{maxBlocks: maxElemBlock, sharedBudget: h100Shared - staticSharedReserve}
	plain := &Backend{maxBlocks: maxElemBlock, sharedBudget: defaultSharedLimit - staticSharedReserve}

	for _, c := range []struct {
		m, n int64
		want GemmTile
	}{
		{4096, 4096, GemmTile128x128},  // the GEMM benchmark
		{4096, 32768, GemmTile128x128}, // E = X W^T of the linear step
		{32768, 1024, GemmTile128x128}, // dW = dE^T X
		{4096, 1024, GemmTile128x128},  // dX = dE W: 256 tiles
		{1024, 1024, GemmTile128x64},   // 64 large tiles only: 128 of 128 x 64
		{512, 512, GemmTile64x64},
		{100, 10, GemmTile64x64}, // MNIST's output layer
		{4096, 10, GemmTile64x64},
	} {
		if got := h100.gemmTile(c.m, c.n); got != c.want {
			t.Errorf("gemmTile(%d, %d) = %v, want %v", c.m, c.n, got, c.want)
		}
	}

	for _, c := range []struct {
		b          *Backend
		rows, k    int64
		plan       RowPlan
		split      bool
		block      Dim3
		sharedSize int64
	}{
		// The energy-loss benchmark: a 1024-thread block per cached row.
		{h100, 8192, 32768, RowPlanBlock, false, Dim3{X: 1024, Y: 1, Z: 1}, 32768 * 4},
		// 512 KiB rows fit no SM: split.
		{h100, 8192, 131072, RowPlanAuto, true, Dim3{}, 0},
		{h100, 4096, 10, RowPlanWarp, false, Dim3{X: 32, Y: 8, Z: 1}, 8 * 12 * 4},
		{h100, 4096, 1024, RowPlanWarp, false, Dim3{X: 32, Y: 8, Z: 1}, 8 * 1024 * 4},
		{h100, 4096, 1025, RowPlanBlock, false, Dim3{X: 256, Y: 1, Z: 1}, 1028 * 4},
		{h100, 4096, 50000, RowPlanBlock, false, Dim3{X: 1024, Y: 1, Z: 1}, 50000 * 4},
		// Without opt-in 32768 floats do not fit, and are longer than one
		// uncached block takes: split. 8192 fit.
		{plain, 8192, 32768, RowPlanAuto, true, Dim3{}, 0},
		{plain, 8192, 8192, RowPlanBlock, false, Dim3{X: 1024, Y: 1, Z: 1}, 8192 * 4},
		{plain, 8192, 12000, RowPlanAuto, true, Dim3{}, 0},
	} {
		plan, split, err := c.b.rowPlan(c.k)
		if err != nil || plan != c.plan || split != c.split {
			t.Errorf("rowPlan(%d) with %d bytes = %v, split %v, %v; want %v, split %v", c.k, c.b.sharedBudget, plan, split, err, c.plan, c.split)
			continue
		}
		if split {
			continue
		}
		_, block, shared, ok := c.b.cachedShape(plan, c.rows, c.k)
		if !ok || block != c.block || shared != c.sharedSize {
			t.Errorf("cachedShape(%v, %d, %d) = block %v, %d bytes (ok %v); want %v, %d bytes", plan, c.rows, c.k, block, shared, ok, c.block, c.sharedSize)
		}
	}

	for _, c := range []struct{ rows, cols, want int64 }{
		{4096, 32768, 1}, // the bias gradient of the linear step: 1024 column blocks
		{4096, 1024, 32},
		{60000, 10, 937},
		{63, 5, 1},
	} {
		if got := h100.columnSplits(c.rows, c.cols); got != c.want {
			t.Errorf("columnSplits(%d, %d) = %d, want %d", c.rows, c.cols, got, c.want)
		}
	}
}
