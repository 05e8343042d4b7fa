"""Generic numerics for particle systems in depth time: depth grids, conditional Gaussian noise,
forward/backward sweeps, rate fits. Knows nothing about ResNets."""
