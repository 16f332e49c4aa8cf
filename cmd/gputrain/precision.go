package main

import (
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/model"
)

// precisionFlag is --precision of train, losses, eval, predict and bench.
// eval and predict use the checkpoint's precision unless the flag is given
// (cli's IsSet tells).
func precisionFlag(what string) cli.Flag {
	return &cli.StringFlag{Name: "precision", Value: model.FP32.String(),
		Usage: what + ": " + strings.Join(model.PrecisionNames(), ", ") +
			" (fp32: float32 products; 3xtf32: float32 accuracy on tensor cores; tf32, bf16: operands rounded to 10 or 7 mantissa bits; all accumulate in float32)"}
}

// overridePrecision replaces cfg's precision (a checkpoint's) with
// --precision when the flag was given.
func overridePrecision(c *cli.Context, cfg *model.Config) error {
	if !c.IsSet("precision") {
		return nil
	}
	p, err := model.ParsePrecision(c.String("precision"))
	if err != nil {
		return err
	}
	cfg.Precision = p
	return nil
}
