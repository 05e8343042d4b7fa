"""Weight space with dense accumulated updates against the stored pairs: time per SGD step.

    .venv/bin/python benchmarks/dense_updates.py [--particles 512] [--depth-steps 4]
        [--steps 10 50 200] [--repeats 5]

One group, one level, float32, minibatch B = 16, P = 16 eval inputs, decoupled backward. For
each number K of SGD steps, the weight-space step at k = K - 1 (history preallocated to K B
pairs plus the eval anchors, so its cost is that of the last step) with
`solver.weight_updates = "pairs"` (re-applied from the stored pairs, O(N K B) per product) and
`"dense"` (an N x N matrix per depth step, O(N^2) per product whatever K), each compiled ahead of
time through `nfd_sde.limit.jit_step` (compile time printed apart) and timed over repeated calls
(median). Prints one table.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
from _timing import aot_compile, ms, table

from nfd_sde.limit import build_solver, jit_step, plan_limit
from nfd_sde.model import Config, load_stream

FORMS = ("pairs", "dense")


def _config(particles: int, depth_steps: int, steps: int, form: str) -> Config:
    return Config().replace(
        model={"dim": 8},
        training={"steps": steps, "batch": 16},
        data={"eval_size": 16},
        solver={
            "particles": particles,
            "depth_steps": depth_steps,
            "representation": "weight",
            "weight_updates": form,
            "groups": 1,
            "levels": 1,
            "memory_limit_gb": 1e6,
        },
        run={"dtype": "float32"},
    )


def time_step(particles: int, depth_steps: int, steps: int, form: str, repeats: int):
    """(compile seconds, median seconds per step, the plan's updates form) of one config."""
    config = _config(particles, depth_steps, steps, form)
    stream = load_stream(config)
    plan = plan_limit(
        config,
        dim=stream.dim,
        steps=stream.steps,
        batch=stream.batch,
        eval_size=stream.x_eval.shape[0],
    )
    key_solver, key_state = jax.random.split(jax.random.key(0))
    solver = build_solver(config, stream, key=key_solver, plan=plan)
    state = solver.init_state(key=key_state)
    one_group = lambda tree: jax.tree.map(lambda a: a[None], tree)  # noqa: E731
    k = steps - 1
    inputs = (
        one_group(solver),
        jnp.int32(k),
        jnp.asarray(stream.x_train[k], jnp.float32),
        jnp.asarray(stream.y_train[k], jnp.float32),
        jnp.asarray(stream.x_eval, jnp.float32),
    )
    compiled, times = aot_compile(jit_step, inputs, one_group(state))
    current = one_group(state)
    current, out = compiled(inputs, current)  # warm-up
    jax.block_until_ready(out)
    samples = []
    for _ in range(repeats):
        begin = time.perf_counter()
        current, out = compiled(inputs, current)
        jax.block_until_ready((current, out))
        samples.append(time.perf_counter() - begin)
    return times["compile_s"], statistics.median(samples), plan.updates.name


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=512)
    parser.add_argument("--depth-steps", type=int, default=4)
    parser.add_argument("--steps", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(
        f"weight space, N = {args.particles}, M = {args.depth_steps}, B = 16, P = 16, one group, "
        f"one level, float32, {jax.devices()[0].device_kind}"
    )
    rows = []
    for steps in args.steps:
        per_step = {}
        for form in FORMS:
            compile_s, step_s, used = time_step(
                args.particles, args.depth_steps, steps, form, args.repeats
            )
            per_step[form] = step_s
            rows.append([steps, used, f"{compile_s:.2f} s", ms(step_s)])
        rows[-1].append(f"{per_step['pairs'] / per_step['dense']:.2f}x")
        rows[-2].append("")
    print(table(["K", "updates", "compile", "time per step (ms)", "pairs / dense"], rows))


if __name__ == "__main__":
    main()
