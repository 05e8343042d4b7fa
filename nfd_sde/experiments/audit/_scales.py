"""The sizes of an audit: `fast` (minutes on 2 CPU cores, run by the test suite), `standard`
(under an hour on 2 CPU cores) and `full` (for a GPU). One frozen dataclass per claim's sizes,
one `AuditScale` holding them all, and the planned seconds of each claim at that scale (measured
on this project's machine, 2 CPU cores shared with other work; the full scale's numbers, meant
for a GPU, are rough guesses)."""

import dataclasses


@dataclasses.dataclass(frozen=True)
class KernelSizes:
    """Claim 1: limit solves at init (particles x groups, finest of three nested grids)."""

    particles: int
    depth_steps: int
    eval_size: int = 4


@dataclasses.dataclass(frozen=True)
class CompareSizes:
    """Claims 2, 3 (and 7's grid): `run_compare` over widths x depths with fixed seeds."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    seeds: int
    particles: int
    limit_seeds: int
    steps: int


@dataclasses.dataclass(frozen=True)
class GapSizes:
    """Claim 3: `coupling_gap` at M = L for every depth, one-layer and two-layer blocks (at each
    first-layer exponent c), `groups` paired particle groups of `particles`."""

    one_layer_depths: tuple[int, ...]
    two_layer_depths: tuple[int, ...]
    exponents: tuple[float, ...]
    particles: int
    groups: int
    steps: int


@dataclasses.dataclass(frozen=True)
class CollapseSizes:
    """Claim 4: `run_collapse_limit` (finite networks and the limit at M = L)."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    seeds: int
    particles: int
    exponents: tuple[float, ...] = (0.0, 0.5)
    groups: int = 4


@dataclasses.dataclass(frozen=True)
class TransferSizes:
    """Claim 5: `run_transfer` on the digits."""

    depths: tuple[int, ...]
    width: int
    log2_lrs: tuple[float, ...]
    exponents: tuple[float, ...]
    seeds: int
    steps: int
    batch: int
    eval_size: int


@dataclasses.dataclass(frozen=True)
class NormsSizes:
    """Claim 6: `run_norms`, one call per seed (so that seeds give intervals)."""

    depths: tuple[int, ...]
    width: int
    seeds: int
    steps: int


@dataclasses.dataclass(frozen=True)
class ScalingSizes:
    """Claim 7: finite ensembles on the digits over widths x depths, and the limit's loss
    extrapolated to infinite depth (three nested grids, finest `depth_steps`)."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    seeds: int
    steps: int
    batch: int
    eval_size: int
    particles: int
    depth_steps: int


@dataclasses.dataclass(frozen=True)
class AuditScale:
    name: str
    kernels: KernelSizes
    compare: CompareSizes
    gap: GapSizes
    collapse: CollapseSizes
    transfer: TransferSizes
    norms: NormsSizes
    scaling: ScalingSizes
    planned_s: dict[str, float]  # claim name -> planned seconds at this scale

    def planned_total(self, names) -> float:
        return float(sum(self.planned_s.get(name, 0.0) for name in names))


FAST = AuditScale(
    name="fast",
    kernels=KernelSizes(particles=2048, depth_steps=8),
    compare=CompareSizes(
        widths=(8, 16), depths=(2, 4), seeds=64, particles=1024, limit_seeds=2, steps=4
    ),
    gap=GapSizes(
        one_layer_depths=(2, 4, 8),
        two_layer_depths=(),
        exponents=(0.0,),
        particles=128,
        groups=4,
        steps=2,
    ),
    collapse=CollapseSizes(depths=(2, 4), widths=(32,), seeds=2, particles=256, exponents=(0.0,)),
    transfer=TransferSizes(
        depths=(2, 4),
        width=16,
        log2_lrs=(-2.0, -1.0, 0.0, 1.0, 2.0, 3.0),
        exponents=(0.0, 0.5),
        seeds=2,
        steps=10,
        batch=8,
        eval_size=32,
    ),
    norms=NormsSizes(depths=(2, 4, 8), width=16, seeds=2, steps=2),
    scaling=ScalingSizes(
        widths=(16, 32),
        depths=(2, 4),
        seeds=4,
        steps=4,
        batch=8,
        eval_size=16,
        particles=256,
        depth_steps=8,
    ),
    planned_s={
        "kernels": 25,
        "convergence": 45,
        "gap": 30,
        "collapse": 35,
        "transfer": 10,
        "norms": 8,
        "scaling": 55,
    },
)
STANDARD = AuditScale(
    name="standard",
    kernels=KernelSizes(particles=8192, depth_steps=16, eval_size=6),
    compare=CompareSizes(
        widths=(8, 16, 32), depths=(2, 4, 8), seeds=512, particles=16384, limit_seeds=8, steps=4
    ),
    gap=GapSizes(
        one_layer_depths=(2, 4, 8, 16, 32, 64, 128, 256),
        two_layer_depths=(2, 4, 8, 16, 32, 64),
        exponents=(0.0, 0.5),
        particles=1024,
        groups=8,
        steps=4,
    ),
    collapse=CollapseSizes(
        depths=(4, 8, 16, 32), widths=(64, 128), seeds=3, particles=2048, groups=8
    ),
    transfer=TransferSizes(
        depths=(2, 4, 8, 16),
        width=64,
        log2_lrs=tuple(k / 2 for k in range(-4, 9)),
        exponents=(0.0, 0.25, 0.5),
        seeds=6,
        steps=100,
        batch=16,
        eval_size=128,
    ),
    norms=NormsSizes(depths=(4, 16, 64), width=128, seeds=3, steps=20),
    scaling=ScalingSizes(  # a real run: 100 steps (the limit in weight space, dense updates)
        widths=(16, 32, 64, 128),
        depths=(2, 4, 8),
        seeds=16,
        steps=100,
        batch=16,
        eval_size=32,
        particles=1024,
        depth_steps=16,
    ),
    planned_s={
        "kernels": 35,
        "convergence": 210,
        "gap": 1330,
        "collapse": 220,
        "transfer": 75,
        "norms": 10,
        "scaling": 650,  # measured 672 s beside a benchmark on 2 cores
    },
)
FULL = AuditScale(
    name="full",
    kernels=KernelSizes(particles=65536, depth_steps=32, eval_size=8),
    compare=CompareSizes(
        widths=(16, 32, 64, 128),
        depths=(2, 4, 8, 16),
        seeds=1024,
        particles=32768,
        limit_seeds=8,
        steps=8,
    ),
    gap=GapSizes(
        one_layer_depths=(2, 4, 8, 16, 32, 64, 128, 256, 512),
        two_layer_depths=(2, 4, 8, 16, 32, 64, 128),
        exponents=(0.0, 0.5),
        particles=65536,
        groups=8,
        steps=8,
    ),
    collapse=CollapseSizes(
        depths=(4, 8, 16, 32, 64), widths=(128, 256, 512), seeds=4, particles=4096, groups=8
    ),
    transfer=TransferSizes(
        depths=(4, 8, 16, 32, 64),
        width=256,
        log2_lrs=tuple(k / 2 for k in range(-6, 11)),
        exponents=(0.0, 0.25, 0.5),
        seeds=3,
        steps=300,
        batch=64,
        eval_size=256,
    ),
    norms=NormsSizes(depths=(4, 16, 64, 256), width=512, seeds=4, steps=100),
    scaling=ScalingSizes(
        widths=(32, 64, 128, 256, 512),
        depths=(4, 8, 16, 32),
        seeds=32,
        steps=32,
        batch=32,
        eval_size=64,
        particles=16384,
        depth_steps=32,
    ),
    planned_s={
        "kernels": 120,
        "convergence": 1800,
        "gap": 2400,
        "collapse": 900,
        "transfer": 3600,
        "norms": 600,
        "scaling": 2400,
    },
)
SCALES = {scale.name: scale for scale in (FAST, STANDARD, FULL)}
