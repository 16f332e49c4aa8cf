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

// precisionOverride checks --precision and returns what it does to a
// checkpoint's configuration: replace the precision when the flag was
// given, nothing otherwise.
func precisionOverride(c *cli.Context) (func(*model.Config), error) {
	if !c.IsSet("precision") {
		return func(*model.Config) {}, nil
	}
	if err := checkChoice("precision", c.String("precision"), model.PrecisionNames()); err != nil {
		return nil, err
	}
	p, err := model.ParsePrecision(c.String("precision"))
	if err != nil {
		return nil, usage(err)
	}
	return func(cfg *model.Config) { cfg.Precision = p }, nil
}

// describePrecision is ", precision P" for the run's header line, or ""
// for the default fp32.
func describePrecision(cfg model.Config) string {
	if cfg.Precision == model.FP32 {
		return ""
	}
	return ", precision " + cfg.Precision.String()
}
