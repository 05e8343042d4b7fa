"""`gia-digits`: standard against decoupled backprop on the digits, under depth-muP and plain muP.

    nfd-sde gia-digits [CONFIG.toml] --out DIR [--depths 2,4,8,16] [--width 128] [--seeds 8]
                       [--steps 100] [--batch 16] [--eval 128] [--overwrite] [--set ...]

The protocol fixes the data (scikit-learn's digits: d = 64, 10 classes) and the cross-entropy
loss; every other field (eta, gamma0, activation, ...) is the config's. Writes gia_digits.json
(every curve and number) and gia_digits.png.
"""

import argparse
import functools
import time

import jax

from ..model import Config, load_config, load_stream, to_dict
from ._arguments import add_run_arguments, count_type, refuse_existing, sizes_type
from ._commands import Command
from ._gia_digits import gia_digits
from ._gia_digits_plots import plot_gia_digits
from ._records import write_json

DEPTHS = functools.partial(sizes_type, example="2,4,8,16")
JSON_FILE, FIGURE_FILE = "gia_digits.json", "gia_digits.png"


def digits_protocol(config: Config, *, steps: int, batch: int, eval_size: int) -> Config:
    """`config` on the digits with cross-entropy, `steps` SGD steps of `batch` images, and
    `eval_size` held-out images for the eval loss."""
    return config.replace(
        data={"source": "digits", "eval_size": eval_size},
        model={"dim": 64, "outputs": 10},
        training={"loss": "cross_entropy", "steps": steps, "batch": batch},
    )


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, example="training.eta=0.25")
    parser.add_argument("--depths", type=DEPTHS, default=(2, 4, 8, 16), help="depths L")
    parser.add_argument("--width", type=count_type, default=128, help="width n (default 128)")
    parser.add_argument("--seeds", type=count_type, default=8, help="seeds (default 8)")
    parser.add_argument("--steps", type=count_type, default=100, help="SGD steps (default 100)")
    parser.add_argument("--batch", type=count_type, default=16, help="minibatch (default 16)")
    parser.add_argument(
        "--eval", type=count_type, default=128, help="held-out images in the eval loss"
    )


def _main(args: argparse.Namespace) -> None:
    config = digits_protocol(
        load_config(args.config, args.overrides),
        steps=args.steps,
        batch=args.batch,
        eval_size=args.eval,
    )
    refuse_existing(args.out, overwrite=args.overwrite, name=JSON_FILE)
    start = time.perf_counter()
    stream = load_stream(config)
    print(f"data: {stream.origin}")
    data = gia_digits(
        config,
        stream,
        depths=args.depths,
        width=args.width,
        seeds=args.seeds,
        key=jax.random.key(config.run.seed),
        progress=True,
    )
    data["config"] = to_dict(config)
    data["meta"]["command_wall_time_s"] = time.perf_counter() - start
    write_json(args.out / JSON_FILE, data)
    plot_gia_digits(data, args.out / FIGURE_FILE)
    for fit in data["fits"]:
        if fit["slope"] is None:
            print(
                f"{fit['scaling']}, {fit['quantity']}: no fit (fewer than two depths with a gap and its error)"
            )
            continue
        low, high = fit["ci95"]
        verdict = {True: "merge", False: "separate", None: "undecided"}[fit["merge"]]
        print(
            f"{fit['scaling']}, {fit['quantity']}: gap ~ L^{fit['slope']:.3f} "
            f"[{low:.3f}, {high:.3f}] -> {verdict}"
        )
    print(f"wrote {args.out / JSON_FILE} and {args.out / FIGURE_FILE}")


GIA_DIGITS = Command(
    name="gia-digits",
    help="standard vs decoupled backprop on the digits, depth-muP and plain muP",
    description="Train width-n networks on scikit-learn's digits with standard backprop and "
    "with independent backward weights (paired by seed) under depth-muP and under plain muP "
    "(no 1/sqrt(L)); the gap between the eval loss curves against L, with a fitted slope.",
    add_arguments=_add_arguments,
    main=_main,
)
