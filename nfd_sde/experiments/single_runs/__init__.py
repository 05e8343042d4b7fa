"""single_runs: one producer on one config (`train`: a finite ResNet, `solve`: the NFD limit),
the `demo`: `compare` at one depth on the built-in config (`run_demo`), and `curves`: a whole
training run of the limit beside finite networks, eval loss and accuracy per step
(`run_curves`)."""

from ._curves import run_curves as run_curves
from ._curves_command import CURVES as CURVES
from ._curves_plots import plot_curves as plot_curves
from ._demo import DEMO as DEMO, run_demo as run_demo
from ._demo_plots import plot_demo as plot_demo
from ._train_solve import SOLVE as SOLVE, TRAIN as TRAIN

# this wing's commands, in the order `nfd-sde --help` lists them
COMMANDS = (TRAIN, SOLVE, DEMO, CURVES)
