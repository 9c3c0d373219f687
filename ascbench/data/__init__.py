"""Data: the TAU22 layout, its reader and validator, and the synthetic stand-in data set."""
