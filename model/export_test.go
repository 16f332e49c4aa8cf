package model

// RowGradient exposes rowGradient to the external tests, which check it
// against a Backend's EnergyLoss.
var RowGradient = rowGradient
