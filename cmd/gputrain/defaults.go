package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/model"
)

// Small data: the defaults (5 epochs, batch 128) suit MNIST's 60,000 rows,
// 2,345 optimizer steps; on a 150-row file they are 5 steps, and the model
// learns next to nothing (issue 12: accuracy 0.47 on wine, below its
// majority class). When neither --epochs nor --batch is given, the defaults
// guarantee at least minDefaultSteps steps of at least minStepsPerEpoch per
// epoch: the batch shrinks to a tenth of the rows (never above 128) and the
// epochs grow to reach the steps. What they chose is said in the first
// line. A run given explicit flags that is still too short gets a warning.
const (
	minDefaultSteps  = 1000
	minStepsPerEpoch = 10
	fewSteps         = 100 // below this, warn
)

// finishConfig completes o.cfg once the training rows are known: the
// small-data defaults (a fresh run only; a resumed run has its
// checkpoint's) and the schedule resolved into steps.
func (o *runOptions) finishConfig(c *cli.Context, rows int) error {
	if o.resume == nil {
		o.defaults = smallDataDefaults(&o.cfg, rows, c.IsSet("epochs"), c.IsSet("batch"))
		var err error
		if o.cfg.Schedule, err = resolveSchedule(o.scheduleSpec, stepsPerEpoch(o.cfg.Batch, rows)); err != nil {
			return usage(err)
		}
	}
	return usage(o.cfg.Validate())
}

func stepsPerEpoch(batch, rows int) int { return ceilDiv(rows, max(min(batch, rows), 1)) }

// smallDataDefaults applies the rule above to cfg for n training rows and
// returns what it chose, or "" when the defaults already suffice or the
// flags were given.
func smallDataDefaults(cfg *model.Config, n int, epochsSet, batchSet bool) string {
	if epochsSet && batchSet || n < 1 {
		return ""
	}
	changed := false
	if !batchSet && stepsPerEpoch(cfg.Batch, n) < minStepsPerEpoch {
		cfg.Batch, changed = max(1, ceilDiv(n, minStepsPerEpoch)), true
	}
	spe := stepsPerEpoch(cfg.Batch, n)
	if !epochsSet && spe*cfg.Epochs < minDefaultSteps {
		cfg.Epochs, changed = ceilDiv(minDefaultSteps, spe), true
	}
	if !changed {
		return ""
	}
	return fmt.Sprintf("chosen for %d rows: %d steps in all; --epochs, --batch override", n, cfg.Epochs*spe)
}

// shortRunWarning returns a warning when a run takes too few optimizer
// steps to learn much, "" otherwise (printed after the run, unless
// --quiet).
func shortRunWarning(cfg model.Config, rows int) string {
	spe := stepsPerEpoch(cfg.Batch, rows)
	if total := cfg.Epochs * spe; total < fewSteps {
		return fmt.Sprintf("gputrain: warning: %d optimizer steps in all (%d epochs of %d): too few to learn much; raise --epochs or lower --batch (without both flags the defaults take at least %d)", total, cfg.Epochs, spe, minDefaultSteps)
	}
	return ""
}
