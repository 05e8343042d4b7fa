"""What every config field means, in one place: the README's config table is `config_table()`
and `configs/example.toml` sets or names every field (tests/test_config_fields.py checks all
three against the config classes, defaults included)."""

import dataclasses
import json

from ._config import Config

MEANINGS: dict[str, dict[str, str]] = {
    "data": {
        "source": '`"teacher"` (generated), `"npz"` (an explicit stream), `"cifar10"` (a local '
        "`cifar-10-batches-py` folder; a folder with only some of `data_batch_1..5` is used as it "
        'is, and the batch files read are printed and recorded) or `"digits"` (scikit-learn\'s '
        "bundled 8x8 digits, d = 64, 10 classes)",
        "path": "the `.npz` file or the CIFAR-10 folder (required for those sources)",
        "eval_size": "eval inputs whose predictions are recorded after every step",
        "teacher": 'teacher network: `"linear"` or one-hidden-layer `"tanh"`',
        "teacher_width": "hidden width of the tanh teacher",
        "label_noise": "std of Gaussian noise added to regression targets",
        "seed": "data seed (an integer in [0, 2^32))",
    },
    "model": {
        "dim": "input dimension d (teacher inputs lie on the sphere \\|x\\|² = d)",
        "outputs": "number of outputs C",
        "activation": '`"linear"`, `"relu"`, `"tanh"` or `"gelu"`',
        "readout": 'read out phi(h_L) (`"phi"`) or h_L (`"linear"`)',
        "block": 'residual block: `"one_layer"` or `"two_layer"`, for the finite networks and the '
        "limit alike (`train`, `solve`, `compare`); two-layer blocks with "
        "`first_layer_exponent` > 0 have no infinite-depth limit, so `solve` takes "
        "`solver.levels = 1` for them",
        "block_order": '`"pre"` (pre-activation blocks) or `"post"`',
        "gamma0": "feature-learning strength; the readout is divided by gamma0 · width",
        "beta_profile": "branch multiplier beta(t): a constant or knots `[[t, value], ...]`, "
        "t in [0, 1]",
        "lr_profile": "learning-rate depth profile: a constant or knots",
    },
    "training": {
        "eta": "base learning rate; each group P moves by eta · eta_P · gamma0² · n · grad",
        "eta_U": "multiplier of the read-in U (0 freezes it)",
        "eta_v": "multiplier of the readout v (0 freezes it)",
        "eta_W": "multiplier of the hidden weights W_l (0 freezes them)",
        "first_layer_exponent": "two-layer blocks: W_{l,1} learns at eta · L^exponent",
        "steps": "SGD steps K (0 records the outputs at initialisation)",
        "batch": "minibatch size B",
        "loss": '`"mse"` or `"cross_entropy"`',
    },
    "network": {
        "width": "finite network width n",
        "depth": "number of residual blocks L",
        "backward": '`"standard"` backprop or `"decoupled"` (independent initial backward weights)',
    },
    "solver": {
        "particles": "Monte Carlo particles N per group",
        "depth_steps": "depth grid steps M (of the finest grid)",
        "groups": "independent particle systems; their spread is the Monte Carlo error (stderr)",
        "levels": "nested depth grids M, M/2, M/4, ... extrapolated in depth (Richardson), "
        "their residual the discretisation error (syserr); 1: the limit of the depth-M network "
        "itself (M must be divisible by 2^(levels - 1))",
        "control_variates": "control variates with exactly known means for the outputs (less "
        "Monte Carlo error)",
        "representation": 'noise representation: `"field"`, `"weight"`, or `"auto"` (the cheaper)',
        "plan_costs": '`"auto"` compares representations by `"model"` (a cost model: no work) '
        'or `"measured"` (one compiled step of each, timed at the last step\'s history: a '
        "compilation per candidate, for long runs)",
        "streaming": 'how a history streamed from host memory reaches the device: `"callbacks"` '
        "(a NumPy buffer read and written through host callbacks, block by block) or "
        '`"memory_kinds"` (an array in the device\'s pinned host memory, its blocks copied inside '
        "the compiled step, no callback; on a CPU XLA copies it whole at each step's entry, so it "
        "saves no memory there)",
        "weight_updates": 'weight space\'s accumulated weight updates: `"dense"` (an N x N matrix '
        "per weight and depth step, updated as pairs are stored: a step's cost does not grow with "
        "the steps taken; the initial matrices are then kept too, drawn once per solve; the "
        "stored pairs are used where they do not fit on the device) or "
        '`"pairs"` (re-applied from the stored pairs every step); field space always uses the '
        "pairs",
        "backward": '`"decoupled"` (the NFD) or `"standard"` (real backprop: two-sided field space or weight space)',
        "driver": 'depth stepping through `"diffrax"` or a plain `"scan"`',
        "jitter": "relative diagonal jitter of the kernel factorisation",
        "memory_limit_gb": 'memory per device ("auto": 75% of what the device reports, as a GPU '
        "does, else 8 GB), for both producers: a solve over it keeps its history in host memory "
        "and streams it (refused if even that does not fit); a finite network over it is "
        "refused before any work",
        "devices": 'devices the particles are split over: `"all"` (the most visible devices '
        "that divide `particles`) or a count",
    },
    "run": {
        "seed": "seed of the weights or particles (`jax.random.key(seed)`; in [0, 2^32))",
        "dtype": '`"float32"` or `"float64"`',
        "kernel_depths": "depth times t at which kernels are recorded",
    },
}


def config_fields() -> dict[str, dict[str, object]]:
    """Every field of every config section with its default, in declaration order."""
    defaults = Config()
    return {
        section.name: {
            field.name: getattr(getattr(defaults, section.name), field.name)
            for field in dataclasses.fields(getattr(defaults, section.name))
        }
        for section in dataclasses.fields(Config)
    }


def toml_value(value: object) -> str:
    """A default as TOML writes it: `"auto"`, `1e-06`, `true`, `[0.0, 0.5, 1.0]`; none: unset."""
    if value is None:
        return "none"
    if isinstance(value, tuple):
        value = list(value)
    if hasattr(value, "value") and not isinstance(value, int | float | str | list | bool):
        value = value.value  # a constant profile
    return json.dumps(value)


def config_table() -> str:
    """The README's config table: every field, its default and its meaning."""
    lines = ["| section | field | default | meaning |", "|---|---|---|---|"]
    for section, fields in config_fields().items():
        for i, (name, default) in enumerate(fields.items()):
            value = toml_value(default)
            value = value if value == "none" else f"`{value}`"
            lines.append(
                f"| {f'`{section}`' if i == 0 else ''} | `{name}` | {value} | "
                f"{MEANINGS[section][name]} |"
            )
    return "\n".join(lines)
