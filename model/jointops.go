package model

// JointOps is an optional Backend capability: dedicated operations that
// build the energies of a JointModel and reduce their gradients onto its
// factors without the indicator matrices of the GEMM design (see joint.go).
// A JointModel checks for it with a type assertion when it is created; a
// backend without it gets the GEMM path, which needs no operation beyond
// the Backend interface.
//
// Layout, the one JointModel uses (and joint.go documents): vars holds
// K_0..K_{n-1} (n >= 1, each K_i >= 1, J = prod_i K_i <= MaxJointStates).
// Joint answers y in [0, J) are mixed-radix, row-major, the last variable
// fastest; y_i(y) is the digit of variable i (JointValues). Variable i's
// values are the columns off_i = K_0+...+K_{i-1} .. off_i+K_i-1 of the
// B x sumK unary matrix S. The pairwise vector is 1 x sumP, sumP =
// sum_{i<j} K_i K_j: the tables P_ij for the pairs i < j in lexicographic
// order ((0,1), (0,2), ..., (1,2), ...), pair (i,j) at offset poff_ij, each
// K_i x K_j row-major.
//
// S holds unary energies already (the heads' outputs are negated scores),
// so both terms add:
//
//	E[b,y] = sum_i S[b, off_i + y_i(y)] + sum_{i<j} P[poff_ij + y_i(y)*K_j + y_j(y)]
//
// Every method checks its arguments before writing anything; outputs are
// overwritten (never read, so NaN in them does not propagate). Sums are
// taken in a fixed order: the same inputs give bitwise the same outputs.
type JointOps interface {
	// JointEnergies writes E (B x J) from S (B x sumK) and the pairwise
	// vector p (1 x sumP). p nil means no pairwise term (a model without
	// pairwise tables, or a single variable).
	JointEnergies(s, p Mat, vars []int, e Mat) error
	// JointGradients reduces dE (B x J) onto the factors:
	//
	//	dS[b, off_i + v]             = sum_{y : y_i(y) = v} dE[b,y]
	//	dP[poff_ij + a*K_j + c]      = sum_b sum_{y : y_i(y) = a, y_j(y) = c} dE[b,y]
	//
	// dS is B x sumK, dP 1 x sumP. dP nil skips the pairwise reduction
	// (no pairwise tables; PredictJoint's marginals need only dS).
	JointGradients(de Mat, vars []int, ds, dp Mat) error
}

// JointLayout returns the column offsets off_i of each variable's values,
// sumK, the offsets poff of the pairwise tables in lexicographic pair order
// and sumP, checking vars like JointStates. Backends implementing JointOps
// use it so that their layout is the model's.
func JointLayout(vars []int) (offK []int, sumK int, offP []int, sumP int, err error) {
	if _, err = JointStates(vars); err != nil {
		return nil, 0, nil, 0, err
	}
	for _, k := range vars {
		offK = append(offK, sumK)
		sumK += k
	}
	for i := range vars {
		for j := i + 1; j < len(vars); j++ {
			offP = append(offP, sumP)
			sumP += vars[i] * vars[j]
		}
	}
	return offK, sumK, offP, sumP, nil
}
