package model

// EmbeddingOps is the Backend capability of the CBOW input layer (cbow.go),
// which cpu and device implement: the mean of a few rows of an embedding
// table, and its gradient scattered back onto the table in a fixed order.
//
// Word ids arrive as a float32 matrix ids (B x W), the way every data set
// reaches a Backend (Data.X, gathered into batches): each element is an
// integer in [0, V) naming a row of the table (V x E), or any other value
// (-1 by convention) for a window position with no word, which is left out
// of the mean. Values are integers well within float32's exact range
// (|x| < 2^24).
type EmbeddingOps interface {
	// EmbedMean sets out[i] = (1/n_i) sum_{j : ids[i,j] in [0, V)}
	// table[ids[i,j]] (out B x E), n_i the number of such j; a row with
	// none is 0. The sum runs over j in order, in float32.
	EmbedMean(table, ids, out Mat) error
	// EmbedMeanGrad overwrites dtable (V x E) with the gradient of
	// sum_i dout[i] . out[i] with respect to the table: dtable[v] =
	// sum_{(i,j) : ids[i,j] = v} dout[i] / n_i, the terms added in the
	// order of (i, j), row-major, so the bits do not depend on the thread
	// count or the scheduling; rows no id names are 0.
	EmbedMeanGrad(dout, ids, dtable Mat) error
}

// EmbedID returns the table row a CBOW id names, or -1 for padding: x must
// be an integer in [0, vocab); anything else (-1, NaN, a fraction, a value
// past the table) is padding. Backends implementing EmbeddingOps decode ids
// this way.
func EmbedID(x float32, vocab int) int {
	if !(x >= 0) || x >= float32(vocab) || x != float32(int32(x)) {
		return -1
	}
	return int(x)
}
