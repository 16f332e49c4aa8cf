package backendcheck

import (
	"fmt"

	"github.com/gputrain/gputrain/model"
)

// EmbedShapes checks the operands of model.EmbeddingOps: a table V x E, ids
// B x W and the B x E rows out (or the gradient dout), every matrix
// distinct. dtable, for EmbedMeanGrad, is the table's shape and passed as
// table.
func EmbedShapes(table, ids, rows model.Mat) error {
	switch {
	case rows.Rows() != ids.Rows():
		return fmt.Errorf("the rows are %s, want %d rows (those of ids %s)", Shape(rows), ids.Rows(), Shape(ids))
	case rows.Cols() != table.Cols():
		return fmt.Errorf("the rows are %s, want %d columns (those of the table %s)", Shape(rows), table.Cols(), Shape(table))
	}
	return Distinct(table, ids, rows)
}
