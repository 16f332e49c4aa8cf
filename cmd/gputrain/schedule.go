package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/gputrain/gputrain/model"
)

// The flags of the training loop's habits from Keras and Lightning:
// learning-rate schedules, early stopping on a held-out metric (with the
// best epoch's checkpoint kept), and the small-data defaults (defaults.go).

func loopFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "lr-schedule", Value: "constant", Usage: "learning rate over the run: " + model.ScheduleForms + "; counts are steps, or epochs with an e (warmup:2e,cosine; step:10e:0.5)"},
		&cli.IntFlag{Name: "early-stop", Usage: "stop when --monitor has not improved for this many epochs, keeping the best epoch's checkpoint beside --save (NAME.best.safetensors); 0: never"},
		&cli.StringFlag{Name: "monitor", Value: "loss", Usage: "the held-out metric --early-stop watches: " + strings.Join(model.MonitorNames(), ", ") + " (of the validation set with --val-split, else of the test set)"},
	}
}

// parseLoop reads the loop flags into cfg (the schedule is checked here and
// resolved, epochs into steps, once the data's size is known).
func parseLoop(c *cli.Context, o *runOptions) error {
	o.scheduleSpec = c.String("lr-schedule")
	if _, err := resolveSchedule(o.scheduleSpec, 1); err != nil {
		return usage(err)
	}
	if err := checkChoice("monitor", c.String("monitor"), model.MonitorNames()); err != nil {
		return err
	}
	o.cfg.EarlyStop = model.EarlyStop{Monitor: strings.ToLower(c.String("monitor")), Patience: c.Int("early-stop")}
	if o.cfg.EarlyStop.Patience == 0 {
		o.cfg.EarlyStop.Monitor = ""
	}
	return usage(o.cfg.EarlyStop.Validate())
}

// resolveSchedule parses a --lr-schedule, turning counts written in epochs
// ("5e") into steps.
func resolveSchedule(spec string, stepsPerEpoch int) (model.Schedule, error) {
	parts := strings.Split(spec, ",")
	for i, p := range parts {
		f := strings.Split(p, ":")
		for j := 1; j < len(f); j++ {
			if f[0] == "cosine" || f[0] == "step" && j == 2 {
				continue // a fraction or a factor, not a count
			}
			if n, ok := strings.CutSuffix(f[j], "e"); ok {
				e, err := strconv.Atoi(n)
				if err != nil || e < 1 {
					return model.Schedule{}, fmt.Errorf("invalid learning-rate schedule %q: %q is not a number of epochs >= 1", spec, f[j])
				}
				f[j] = strconv.Itoa(e * stepsPerEpoch)
			}
		}
		parts[i] = strings.Join(f, ":")
	}
	return model.ParseSchedule(strings.Join(parts, ","))
}

// bestPath is where the best epoch's checkpoint goes beside save:
// run.safetensors -> run.best.safetensors.
func bestPath(save string) string {
	if base, ok := strings.CutSuffix(save, ".safetensors"); ok {
		return base + ".best.safetensors"
	}
	return save + ".best"
}
