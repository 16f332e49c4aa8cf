package model

import (
	"fmt"
	"strconv"
	"strings"
)

// Spec describes the architecture of an energy model: the sizes of its
// hidden layers (none for a linear model) and their activation. The final
// layer is always linear and E = -(scores), so low energy means a high score.
type Spec struct {
	Hidden     []int
	Activation Activation
	// Embed > 0 puts a CBOW input layer below the hidden layers (cbow.go):
	// the inputs are word ids and the layers see the mean of their
	// embeddings, rows of a Classes x Embed table.
	Embed int
}

// SpecForms lists the model specifications ParseSpec accepts.
const SpecForms = `"linear", "mlp:H1[,H2,...]" (hidden sizes > 0), optionally followed by ":relu" or ":tanh"; either after "cbow:E+" (a CBOW input layer of E-wide word embeddings, inputs word ids), or "cbow:E" alone`

// ParseSpec parses a model specification: "linear", "mlp:256",
// "mlp:256,128", "mlp:256,128:tanh". The activation defaults to ReLU.
func ParseSpec(s string) (Spec, error) {
	bad := func(why string) (Spec, error) {
		return Spec{}, fmt.Errorf("invalid model %q: %s (valid: %s)", s, why, SpecForms)
	}
	if sp, ok, err := parseCBOWSpec(s); ok {
		return sp, err
	}
	parts := strings.Split(strings.TrimSpace(s), ":")
	switch strings.ToLower(parts[0]) {
	case "linear":
		if len(parts) > 1 {
			return bad("a linear model takes no sizes or activation")
		}
		return Spec{Activation: ReLU}, nil
	case "mlp":
		if len(parts) < 2 || parts[1] == "" {
			return bad("mlp needs hidden sizes")
		}
		if len(parts) > 3 {
			return bad("too many ':'")
		}
		var sp Spec
		for _, f := range strings.Split(parts[1], ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				return bad(fmt.Sprintf("hidden size %q is not an integer > 0", f))
			}
			sp.Hidden = append(sp.Hidden, n)
		}
		sp.Activation = ReLU
		if len(parts) == 3 {
			a, err := ParseActivation(parts[2])
			if err != nil {
				return bad(err.Error())
			}
			sp.Activation = a
		}
		return sp, nil
	}
	return bad("unknown kind")
}

// String returns the specification in the form ParseSpec accepts.
func (s Spec) String() string {
	if s.Embed > 0 {
		return cbowSpecString(s)
	}
	if len(s.Hidden) == 0 {
		return "linear"
	}
	hs := make([]string, len(s.Hidden))
	for i, h := range s.Hidden {
		hs[i] = strconv.Itoa(h)
	}
	return "mlp:" + strings.Join(hs, ",") + ":" + s.Activation.String()
}

// ActivationNames lists the names ParseActivation accepts.
func ActivationNames() []string { return []string{ReLU.String(), Tanh.String()} }

// ParseActivation returns the activation with the given name.
func ParseActivation(name string) (Activation, error) {
	for _, a := range []Activation{ReLU, Tanh} {
		if strings.EqualFold(strings.TrimSpace(name), a.String()) {
			return a, nil
		}
	}
	return 0, fmt.Errorf("unknown activation %q (valid: %s)", name, strings.Join(ActivationNames(), ", "))
}
