// Package backendcheck holds the argument checks that every model.Backend
// runs before it does any work: shapes, lengths, aliasing, index ranges,
// optimizer scalars. Backends must reject the same misuse with the same
// words, so the checks live here once; they are for backend authors, which
// is why they are not in package model, whose documentation is for users.
//
// The checks see operands only through model.Mat.Rows/Cols and
// model.Ints.Len (and interface identity for aliasing): a backend first
// resolves its own handles (nil, foreign, freed), then calls these. Their
// errors carry no backend or operation prefix; the caller wraps them, e.g.
// fmt.Errorf("cpu: Gemm: %w", err).
package backendcheck
