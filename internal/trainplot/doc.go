// Package trainplot draws the training figure of `gputrain train --plot`:
// one PNG with four panels, training and test loss per epoch, test accuracy
// per epoch, the histogram of the margin E_I - E_C over the test rows at the
// latest epoch, and the mean energies E_C and E_I per epoch. It sits beside
// the command, above model/, so model/ never imports gonum/plot.
package trainplot
