package model

// RowGradient exposes rowGradient to the external tests, which check it
// against a Backend's EnergyLoss.
var RowGradient = rowGradient

// SealChecksums exposes sealChecksums, so tests can craft checkpoints whose
// only fault is the one they plant.
var SealChecksums = sealChecksums
