"""`nfd-sde audit`: every claim of the paper measured at one scale, each with its verdict, in one
report (DIR/report.html with the figures inline, DIR/report.md with DIR/figures/*.png).

    nfd-sde audit [--scale fast|standard|full] --out DIR [--data digits|cifar10]
                  [--data-path PATH] [--claims NAME,...] [--overwrite]

Each claim's record (its data, verdict, config, seed, versions, device, wall time) is written
atomically to DIR/claims/<name>.json the moment it finishes, and the experiments under it keep
their own finer-grained resume files in DIR/work/; a rerun skips finished claims, so a killed
audit resumes. DIR/audit.json names the scale, data and seed; another audit in the same
directory is refused unless `overwrite`, which discards its claims and work and starts again.
"""

import argparse
import json
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
from tqdm.auto import tqdm

from ...model import json_ready, load_config, run_meta, to_dict
from ..common import Command, check_out_dir, read_json, write_json
from ._blocks import CollapseClaim, NormsClaim
from ._claims import AbstractClaim, AuditContext, KernelClaim
from ._convergence import ConvergenceClaim
from ._gap import GapClaim
from ._report import write_reports
from ._scales import SCALES, AuditScale
from ._scaling import ScalingClaim
from ._transfer import TransferClaim
from ._verdicts import INCONCLUSIVE, verdict

CLAIMS: tuple[AbstractClaim, ...] = (
    KernelClaim(),
    ConvergenceClaim(),
    GapClaim(),
    CollapseClaim(),
    TransferClaim(),
    NormsClaim(),
    ScalingClaim(),
)
DATA_SOURCES = {
    "digits": {"data": {"source": "digits"}, "model": {"dim": 64, "outputs": 10}},
    "cifar10": {"data": {"source": "cifar10"}, "model": {"dim": 3072, "outputs": 10}},
}
MANIFEST = "audit.json"


def audit_configs(data: str = "digits", data_path: str | Path | None = None, *, seed: int = 0):
    """(the synthetic-teacher config, the real-data config) the claims start from."""
    if data not in DATA_SOURCES:
        raise ValueError(f"data={data!r}: choose one of {tuple(DATA_SOURCES)}")
    config = load_config(None, [f"run.seed={seed}"])
    sections = {name: dict(fields) for name, fields in DATA_SOURCES[data].items()}
    if data_path is not None:
        sections["data"]["path"] = str(data_path)
    elif data == "cifar10":
        raise ValueError(
            "data='cifar10' needs the extracted cifar-10-batches-py folder: --data-path"
        )
    return config, config.replace(**sections)


def run_audit(
    scale: str | AuditScale = "fast",
    out_dir: str | Path = "runs/audit",
    *,
    data: str = "digits",
    data_path: str | Path | None = None,
    claims: Sequence[str] | None = None,
    seed: int = 0,
    progress: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Measure every claim (or those named in `claims`) not already finished in `out_dir`, and
    write the reports; returns {"records": [...], "computed": [names measured this call],
    "report": path}. Mistakes in the arguments are refused before any work."""
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ValueError(f"scale={scale!r}: choose one of {tuple(SCALES)}")
        scale = SCALES[scale]
    chosen = _chosen(claims)
    out = Path(out_dir)
    check_out_dir(out)
    config, data_config = audit_configs(data, data_path, seed=seed)
    manifest = {"scale": scale.name, "data": data, "seed": seed,
                "data_path": None if data_path is None else str(data_path)}  # fmt: skip
    _prepare(out, manifest, overwrite=overwrite)
    context = AuditContext(config, data_config, scale, out / "work", jax.random.key(seed), progress)
    cached = {c.name: _cached(out, c, context) for c in chosen}
    todo = [c for c in chosen if cached[c.name] is None]
    planned = scale.planned_total(c.name for c in todo)
    print(f"audit at scale {scale.name!r}: {len(chosen) - len(todo)} claim(s) cached, "
          f"{len(todo)} to run, planned {planned / 60:.1f} min "
          f"({', '.join(f'{c.name} {scale.planned_s[c.name]:.0f} s' for c in todo) or 'nothing'})")  # fmt: skip
    records, computed = [], []
    bar = tqdm(chosen, disable=not progress, desc="audit", unit="claim")
    for claim in bar:
        bar.set_postfix_str(claim.name)
        path = out / "claims" / f"{claim.name}.json"
        if cached[claim.name] is not None:  # the verdict is re-derived from the cached data
            record = cached[claim.name]
            records.append(record | {"verdict": claim.verdict(record["data"])})
            continue
        computed.append(claim.name)
        records.append(_measure(claim, context, path))
    report = write_reports(out, records, CLAIMS, scale=scale.name, data=data)
    return {"records": records, "computed": computed, "report": report}


def _measure(claim: AbstractClaim, context: AuditContext, path: Path) -> dict[str, Any]:
    start = time.perf_counter()
    record = {"name": claim.name, "scale": context.scale.name, "sizes": context.sizes_of(claim),
              "config": to_dict(context.config), "data_config": to_dict(context.data_config)}  # fmt: skip
    try:
        data = json.loads(json.dumps(json_ready(claim.measure(context))))
    except (ArithmeticError, ValueError, RuntimeError) as error:  # a failed run is a result
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"{claim.name}: the measurement failed ({message}); not cached, a rerun retries")
        wall = time.perf_counter() - start
        return record | {"data": None, "error": message, "wall_time_s": wall,
                         "verdict": verdict(INCONCLUSIVE, f"the measurement failed: {message}")}  # fmt: skip
    wall = time.perf_counter() - start
    record |= {"data": data, "verdict": claim.verdict(data), "wall_time_s": wall,
               "meta": run_meta(context.config, wall_time=wall)}  # fmt: skip
    write_json(path, record)
    print(f"{claim.name}: {record['verdict']['verdict']} ({wall:.0f} s)")
    return record


def _cached(out: Path, claim: AbstractClaim, context: AuditContext) -> dict[str, Any] | None:
    """The claim's finished record, if there is one for the current sizes (a claim whose sizes
    changed is measured again)."""
    path = out / "claims" / f"{claim.name}.json"
    try:
        record = read_json(path) if path.is_file() else None
    except ValueError:
        return None
    if record is None or record.get("sizes") != context.sizes_of(claim):
        return None
    return record


def _chosen(names: Sequence[str] | None) -> list[AbstractClaim]:
    if names is None:
        return list(CLAIMS)
    known = {c.name: c for c in CLAIMS}
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"claims {list(unknown or names)!r}: choose from {list(known)}")
    return [c for c in CLAIMS if c.name in names]


def _prepare(out: Path, manifest: dict[str, Any], *, overwrite: bool) -> None:
    path = out / MANIFEST
    if path.is_file() and not overwrite:
        try:
            stored = read_json(path)
        except ValueError:
            stored = None
        if stored != manifest:
            raise ValueError(
                f"{str(out)!r} holds an audit of another scale, data or seed "
                f"({_describe(stored)}); pass --overwrite to discard it or choose another --out"
            )
    if overwrite:
        for folder in ("claims", "work", "figures"):
            shutil.rmtree(out / folder, ignore_errors=True)
    write_json(path, manifest)


def _describe(manifest) -> str:
    if not isinstance(manifest, dict):
        return "unreadable audit.json"
    return ", ".join(f"{k} {manifest.get(k)}" for k in ("scale", "data", "seed"))


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--scale", choices=tuple(SCALES), default="fast",
                        help="fast (minutes, 2 CPU cores), standard (< 1 h, 2 CPU cores) or "
                        "full (a GPU); default fast")  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument("--data", choices=tuple(DATA_SOURCES), default="digits",
                        help="real data of claims 5 and 7 (default digits, no download)")  # fmt: skip
    parser.add_argument("--data-path", type=Path, help="cifar10: the cifar-10-batches-py folder")
    parser.add_argument("--claims", type=lambda s: tuple(s.split(",")), metavar="NAME,...",
                        help=f"only these claims: {','.join(c.name for c in CLAIMS)}")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="run.seed of every claim (default 0)")
    parser.add_argument("--overwrite", action="store_true",
                        help="discard an earlier audit in --out instead of resuming it")  # fmt: skip


def _main(args: argparse.Namespace) -> None:
    result = run_audit(args.scale, args.out, data=args.data, data_path=args.data_path,
                       claims=args.claims, seed=args.seed, overwrite=args.overwrite)  # fmt: skip
    for record in result["records"]:
        print(f"{record['name']:>12}: {record['verdict']['verdict']}")
    print(f"wrote {result['report']} and {result['report'].with_suffix('.md')}")


AUDIT = Command(
    name="audit",
    help="measure every claim of the paper and write a report with verdicts",
    description="Measure each claim (kernels, convergence, the backward gap, the collapse, "
    "transfer, feature norms, scaling) at one scale and write DIR/report.html and "
    "DIR/report.md: per claim the measurement, a figure, fitted numbers with 95% intervals and "
    "a verdict by a stated rule. Finished claims are cached in DIR/claims/; a rerun resumes.",
    add_arguments=_add_arguments,
    main=_main,
)
