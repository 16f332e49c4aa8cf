package cpu

// The blocked GEMM behind Gemm when the AVX2+FMA micro-kernel is available,
// in the GotoBLAS/BLIS layout: for each block of kcBlock along k, op(B) is
// packed into 16-column micro-panels (kept in L1 while used) and op(A), in
// blocks of mcBlock rows, into 6-row micro-panels (kept in L2); kern6x16
// multiplies one pair into a 6x16 tile, and a short Go epilogue applies
// alpha, beta and the edges. Each C element is accumulated over the k blocks
// in order by exactly one goroutine, so the bits do not depend on the split.
const (
	mr      = 6   // rows of the micro-kernel's tile
	nr      = 16  // columns of the micro-kernel's tile
	kcBlock = 256 // k per packed block: a 6x256 A panel (6 KiB) + a 16x256 B panel (16 KiB) fit L1
	mcBlock = 96  // rows of A packed at once (96 KiB): fits L2
	// minParallelFlops is the work per k block below which one goroutine
	// does everything: splitting costs a few microseconds.
	minParallelFlops = 1 << 20
)

// gemmBlocked computes C (m x n, row-major) = alpha*op(A)*op(B) + beta*C for
// k >= 1 and alpha != 0; beta == 0 never reads C.
func (b *Backend) gemmBlocked(transA, transB bool, m, n, k int, alpha float32, a, bd []float32, beta float32, c []float32) {
	mPanels := (m + mr - 1) / mr
	nPanels := (n + nr - 1) / nr
	if need := min(k, kcBlock) * nPanels * nr; len(b.packB) < need {
		b.packB = make([]float32, need)
	}
	chunks := 1
	if 2*m*n*min(k, kcBlock) >= minParallelFlops {
		chunks = b.threads
	}
	// Split the larger of the two panel counts; the smaller one is covered
	// whole by every goroutine.
	splitRows := mPanels >= nPanels
	if splitRows {
		chunks = min(chunks, mPanels)
	} else {
		chunks = min(chunks, nPanels)
	}
	for len(b.packA) < chunks {
		b.packA = append(b.packA, make([]float32, mcBlock*kcBlock))
	}
	for pc := 0; pc < k; pc += kcBlock {
		kc := min(kcBlock, k-pc)
		// Only the first k block applies beta; later ones accumulate.
		blockBeta := beta
		if pc > 0 {
			blockBeta = 1
		}
		forChunks(nPanels, chunks, func(_, lo, hi int) {
			for jp := lo; jp < hi; jp++ {
				packB(transB, bd, n, k, pc, kc, jp*nr, b.packB[jp*kc*nr:(jp+1)*kc*nr])
			}
		})
		forChunks(max(mPanels, nPanels), chunks, func(ch, lo, hi int) {
			p0, p1, q0, q1 := 0, mPanels, 0, nPanels
			if splitRows {
				p0, p1 = lo, hi
			} else {
				q0, q1 = lo, hi
			}
			macroKernel(transA, a, m, k, pc, kc, p0, p1, q0, q1, b.packA[ch], b.packB, alpha, blockBeta, c, n)
		})
	}
}

// macroKernel multiplies row panels [p0, p1) of op(A)'s k block by column
// panels [q0, q1) of the packed B block into C.
func macroKernel(transA bool, a []float32, m, k, pc, kc, p0, p1, q0, q1 int, bufA, bufB []float32, alpha, beta float32, c []float32, n int) {
	var tile [mr * nr]float32
	const mcPanels = mcBlock / mr
	for ip := p0; ip < p1; ip += mcPanels {
		ipEnd := min(ip+mcPanels, p1)
		for i := ip; i < ipEnd; i++ {
			packA(transA, a, m, k, pc, kc, i*mr, bufA[(i-ip)*kc*mr:(i-ip+1)*kc*mr])
		}
		for jp := q0; jp < q1; jp++ {
			bp := bufB[jp*kc*nr : (jp+1)*kc*nr]
			j0 := jp * nr
			cols := min(nr, n-j0)
			for i := ip; i < ipEnd; i++ {
				kern6x16(kc, &bufA[(i-ip)*kc*mr], &bp[0], &tile[0])
				i0 := i * mr
				for r := 0; r < min(mr, m-i0); r++ {
					crow := c[(i0+r)*n+j0 : (i0+r)*n+j0+cols]
					trow := tile[r*nr : r*nr+cols]
					switch beta {
					case 0:
						for j, t := range trow {
							crow[j] = alpha * t
						}
					case 1:
						for j, t := range trow {
							crow[j] += alpha * t
						}
					default:
						for j, t := range trow {
							crow[j] = alpha*t + beta*crow[j]
						}
					}
				}
			}
		}
	}
}

// packA writes rows [i0, i0+mr) and columns [pc, pc+kc) of op(A) (m x k)
// into dst as dst[p*mr+r] = op(A)[i0+r, pc+p], zeros past row m.
func packA(transA bool, a []float32, m, k, pc, kc, i0 int, dst []float32) {
	rows := min(mr, m-i0)
	if transA { // A is k x m: the mr values of one p are contiguous
		for p := 0; p < kc; p++ {
			src := a[(pc+p)*m+i0 : (pc+p)*m+i0+rows]
			d := dst[p*mr : p*mr+mr]
			copy(d, src)
			clear(d[rows:])
		}
		return
	}
	for r := 0; r < rows; r++ {
		src := a[(i0+r)*k+pc : (i0+r)*k+pc+kc]
		for p, x := range src {
			dst[p*mr+r] = x
		}
	}
	for r := rows; r < mr; r++ {
		for p := 0; p < kc; p++ {
			dst[p*mr+r] = 0
		}
	}
}

// packB writes rows [pc, pc+kc) and columns [j0, j0+nr) of op(B) (k x n)
// into dst as dst[p*nr+j] = op(B)[pc+p, j0+j], zeros past column n.
func packB(transB bool, bd []float32, n, k, pc, kc, j0 int, dst []float32) {
	cols := min(nr, n-j0)
	if !transB { // B is k x n: the nr values of one p are contiguous
		for p := 0; p < kc; p++ {
			d := dst[p*nr : p*nr+nr]
			copy(d, bd[(pc+p)*n+j0:(pc+p)*n+j0+cols])
			clear(d[cols:])
		}
		return
	}
	for j := 0; j < cols; j++ {
		src := bd[(j0+j)*k+pc : (j0+j)*k+pc+kc]
		for p, x := range src {
			dst[p*nr+j] = x
		}
	}
	for j := cols; j < nr; j++ {
		for p := 0; p < kc; p++ {
			dst[p*nr+j] = 0
		}
	}
}
