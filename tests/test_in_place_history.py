"""A resident history is written in place: the compiled limit step holds no copy of it.

A step reads the stored history (the sweeps' products, the new pairs' kernels) and then writes
the new pairs into it. Where a write does not depend on every read of the array it writes (the
new pairs' noise is drawn from keys, not from the sweeps), XLA cannot order the reads first and
copies the whole array before writing it: at N = 4096 and 2048 stored pairs the field-space step
copied 4 histories of 134 MB twice each and ran 1.5x as long. `nfd_sde.limit`'s store makes each
write depend on the reads (`_after`); this checks the compiled step, which needs no tolerance.
"""

import re

import pytest

from nfd_sde import load_config, load_stream
from tests._limit_helpers import compiled_step_text

PARTICLES, STEPS, BATCH = 48, 7, 4  # no other axis of the step is 48 or 28 = 7 x 4 long


def _compiled_step(backward: str) -> str:
    """Control variates off: their eval pairs are stored at step 0 only, inside a conditional,
    whose branches XLA gives their own copies of the factors (not of the histories;
    measured)."""
    config = load_config(
        None,
        [
            f"solver.particles={PARTICLES}",
            "solver.depth_steps=4",
            "solver.groups=1",
            "solver.levels=1",
            "solver.representation=field",
            f"solver.backward={backward}",
            "solver.control_variates=false",
            f"training.steps={STEPS}",
            f"training.batch={BATCH}",
            "data.eval_size=4",
        ],
    )
    return compiled_step_text(config, load_stream(config))


@pytest.mark.parametrize("backward", ["decoupled", "standard"])
def test_the_field_space_step_writes_its_histories_in_place(backward):
    """The histories (groups, depth steps, particles, slots): stored inputs and, per weight and
    direction, the stored noise (white increments, or the two-sided space's products)."""
    text = _compiled_step(backward)
    slots = STEPS * BATCH
    history = re.compile(rf"= f32\[1,4,{PARTICLES},{slots}\]\{{[0-9,]+\}} copy\(")
    assert f"[1,4,{PARTICLES},{slots}]" in text  # the histories are there
    copies = [line.strip()[:120] for line in text.splitlines() if history.search(line)]
    assert not copies, copies
