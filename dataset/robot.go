package dataset

import (
	"fmt"
	"math/rand/v2"
)

// Motor commands of the two-motor robot, one per wheel.
const (
	Backward = 0
	Stop     = 1
	Forward  = 2
	// MotorValues is the number of commands per motor.
	MotorValues = 3
)

// MotorNames names the motor commands by value.
var MotorNames = []string{"backward", "stop", "forward"}

// Robot situations, by what the two IR sensors see.
const (
	SituationClear   = iota // both sides clear: drive on
	SituationOneSide        // an obstacle on one side: turn away from it
	SituationBlocked        // blocked on both sides alike: turn left or right, either will do
	NumSituations
)

// SituationNames names the situations by value.
var SituationNames = []string{"clear", "one-side", "blocked"}

// RobotSet is a sample of the robot simulator: inputs are the two noisy IR
// readings, labels the two motor commands (Labels[i] = [left, right]).
type RobotSet struct {
	*Set
	// Situation of each row (SituationClear, ...).
	Situation []int
	// Distances without sensor noise, N x 2.
	Distances []float32
}

// Policy thresholds, in units of the sensors' range (0 = touching, 1 = far).
const (
	robotClear     = 0.6  // a side further than this is clear
	robotNear      = 0.35 // a side closer than this needs a sharp turn
	robotSymmetric = 0.15 // sides within this of each other are "blocked alike"
)

// RobotPolicy returns the correct joint command for true distances (dl, dr)
// and the situation. Blocked rows draw the turn direction from coin; every
// other situation is deterministic:
//   - both sides clear: (forward, forward);
//   - blocked alike on both sides: (forward, backward) or (backward, forward),
//     with equal chance — averaging per-motor decisions here gives incoherent
//     commands such as (forward, forward) or (backward, backward);
//   - otherwise turn away from the closer side: sharply (one motor forward,
//     the other backward) when it is near, gently (one forward, one stopped)
//     when it is not.
func RobotPolicy(dl, dr float64, coin bool) (left, right, situation int) {
	switch {
	case dl > robotClear && dr > robotClear:
		return Forward, Forward, SituationClear
	case abs(dl-dr) < robotSymmetric:
		if coin {
			return Forward, Backward, SituationBlocked
		}
		return Backward, Forward, SituationBlocked
	case dl < dr: // obstacle on the left: turn right (left wheel forward)
		if dl < robotNear {
			return Forward, Backward, SituationOneSide
		}
		return Forward, Stop, SituationOneSide
	default: // obstacle on the right: turn left
		if dr < robotNear {
			return Backward, Forward, SituationOneSide
		}
		return Stop, Forward, SituationOneSide
	}
}

// RobotCoherent reports whether the joint command (left, right) is one the
// policy could give in the given situation for distances (dl, dr): in a
// blocked situation either turn is coherent; elsewhere only the policy's
// own command is.
func RobotCoherent(dl, dr float64, left, right int) bool {
	l0, r0, sit := RobotPolicy(dl, dr, true)
	if sit == SituationBlocked {
		return (left == Forward && right == Backward) || (left == Backward && right == Forward)
	}
	return left == l0 && right == r0
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Robot simulates n situations of the two-motor robot from a seed. Distances
// are drawn so that each situation is common (about a third each); each
// sensor reads its distance plus Gaussian noise of standard deviation noise.
func Robot(n int, noise float64, seed uint64) (*RobotSet, error) {
	if n <= 0 {
		return nil, fmt.Errorf("robot: n must be > 0, got %d", n)
	}
	if noise < 0 {
		return nil, fmt.Errorf("robot: noise must be >= 0, got %v", noise)
	}
	rng := rand.New(rand.NewPCG(seed, 0x726f626f74))
	s := &RobotSet{
		Set: &Set{
			Name: "robot", N: n, D: 2, Shape: []int{2}, Classes: MotorValues * MotorValues,
			X: make([]float32, 2*n), Y: make([]int32, n),
			Labels: make([][]int32, n), VarClasses: []int{MotorValues, MotorValues},
		},
		Situation: make([]int, n),
		Distances: make([]float32, 2*n),
	}
	for i := 0; i < n; i++ {
		var dl, dr float64
		switch rng.IntN(3) {
		case 0: // open space
			dl, dr = 0.6+0.4*rng.Float64(), 0.6+0.4*rng.Float64()
		case 1: // one side closer
			a, b := 0.05+0.5*rng.Float64(), 0.05+rng.Float64()*0.95
			if rng.IntN(2) == 0 {
				dl, dr = a, b
			} else {
				dl, dr = b, a
			}
		default: // a wall or a corner ahead
			dl = 0.05 + 0.5*rng.Float64()
			dr = dl + (rng.Float64()*2-1)*robotSymmetric
		}
		l, r, sit := RobotPolicy(dl, dr, rng.IntN(2) == 0)
		s.Distances[2*i], s.Distances[2*i+1] = float32(dl), float32(dr)
		s.X[2*i] = float32(dl + noise*rng.NormFloat64())
		s.X[2*i+1] = float32(dr + noise*rng.NormFloat64())
		s.Labels[i] = []int32{int32(l), int32(r)}
		s.Y[i] = int32(l*MotorValues + r) // the joint answer as one class
		s.Situation[i] = sit
	}
	return s, nil
}
