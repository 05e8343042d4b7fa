"""`solver.plan_costs = "measured"`: `auto` times one compiled step of every representation the
plan accepts and takes the fastest (`nfd_sde.limit._measured_plan`)."""

import jax
import numpy as np
import pytest

from nfd_sde.limit import _measured_plan, plan_for, solve_limit
from nfd_sde.model import load_config, load_stream

SMALL = [
    "solver.particles=64",
    "solver.groups=2",
    "solver.levels=1",
    "solver.depth_steps=2",
    "training.steps=6",
    "training.batch=4",
    "data.eval_size=4",
]


def _config(*extra):
    return load_config(None, [*SMALL, *extra])


def test_the_measured_plan_times_every_candidate_and_takes_the_fastest():
    config = _config("solver.plan_costs=measured")
    stream = load_stream(config)
    plan = plan_for(config, stream)
    assert set(plan.costs) == {"field", "weight"}
    assert all(0 < t < 60 for t in plan.costs.values()), plan.costs
    assert plan.costs[plan.representation] == min(plan.costs.values())
    assert "solver.plan_costs='measured'" in plan.describe() and " s (compiled in " in plan.reason
    # planned once per config and sizes: the command's second plan (the solve's) is not retimed
    assert plan_for(config, stream) is plan
    # the solve runs the representation it measured, with that representation's numbers
    named = config.replace(solver={"plan_costs": "model", "representation": plan.representation})
    key = jax.random.key(3)
    measured = solve_limit(config, stream, key=key)
    direct = solve_limit(named, stream, key=key)
    np.testing.assert_array_equal(measured.f_eval, direct.f_eval)


@pytest.mark.parametrize("faster", ["field", "weight"])
def test_the_measured_choice_overrides_the_cost_model(monkeypatch, faster):
    config = _config("solver.plan_costs=measured")
    stream = load_stream(config)
    modelled = plan_for(config.replace(solver={"plan_costs": "model"}), stream)
    times = {faster: 0.01, ({"field", "weight"} - {faster}).pop(): 1.0}
    monkeypatch.setattr(
        _measured_plan, "step_seconds", lambda c, s, p: (times[p.representation], 0.5)
    )
    monkeypatch.setattr(_measured_plan, "_MEASURED", {})
    plan = plan_for(config, stream)
    assert plan.representation == faster, (plan.describe(), modelled.describe())
    assert f"{plan.kind.label} space is the fastest" in plan.reason


def test_a_named_representation_or_a_single_candidate_is_not_timed(monkeypatch):
    def fail(*args):
        raise AssertionError("timed")

    monkeypatch.setattr(_measured_plan, "step_seconds", fail)
    monkeypatch.setattr(_measured_plan, "_MEASURED", {})
    named = _config("solver.plan_costs=measured", "solver.representation=weight")
    assert plan_for(named, load_stream(named)).representation == "weight"
    # past as many pairs as particles field space is refused: weight space, untimed
    long = _config("solver.plan_costs=measured", "training.steps=40")
    plan = plan_for(long, load_stream(long))
    assert plan.representation == "weight" and "not timed (only one" in plan.reason
