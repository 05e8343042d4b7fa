"""The one shape of an experiment on the command line: `AbstractExperiment`.

Every experiment command runs the same sequence, `AbstractExperiment.main`:

1. `configure(args)`: the config of CONFIG with its `--set` overrides and the flags that are
   overrides (`load_with_flags`);
2. check `--out` before any work: a directory holding the experiment's `record` (the file that
   marks a run complete) is refused unless `--overwrite`; an experiment that resumes by itself
   (`record = None`) needs only a writable `--out`;
3. load the data stream (`data: ...`);
4. `run(config, stream, args, key=...)` -> data, with the key of `run.seed`; a run that keeps
   finished pieces under `--out` resumes from them;
5. on process 0 (the only process unless `--distributed`): `plot(data, out)`, the figures, then
   `write(data, config, out, wall_time=...)`, the record, every file atomically and the figures
   first, so that a failed write leaves no finished-looking run; `with_meta` gives a record its
   config and run metadata (seed, versions, device, wall time);
6. print `report(data, args)`.

A new experiment is one final subclass (its arguments and those five steps, each a call into the
experiment's `run_<experiment>` and `plot_<experiment>`) and its place in its wing's `COMMANDS`.
"""

import abc
import argparse
import time
from pathlib import Path
from typing import Any, final

import equinox as eqx
import jax
from jaxtyping import PRNGKeyArray

from ...model import Config, DataStream, load_stream, run_meta, to_dict
from ._arguments import check_out_dir, refuse_existing
from ._commands import Command
from ._records import write_json


class AbstractExperiment(eqx.Module):
    """An experiment's command: `name`, `help` and `description` (its `nfd-sde --help`), the
    `record` that marks a run complete (None: the run resumes from --out by itself), and the
    steps that `main` runs in order (module docstring)."""

    name: eqx.AbstractClassVar[str]
    help: eqx.AbstractClassVar[str]
    description: eqx.AbstractClassVar[str]
    record: eqx.AbstractClassVar[str | None]

    @abc.abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The flags; `--out` and `--overwrite` among them."""

    @abc.abstractmethod
    def configure(self, args: argparse.Namespace) -> Config:
        """The resolved config; a mistake in it is a ValueError."""

    @abc.abstractmethod
    def run(
        self, config: Config, stream: DataStream, args: argparse.Namespace, *, key: PRNGKeyArray
    ) -> Any:
        """The experiment's data (its `run_<experiment>`)."""

    @abc.abstractmethod
    def plot(self, data: Any, out: Path) -> None:
        """The figures, under `out`."""

    @abc.abstractmethod
    def write(self, data: Any, config: Config, out: Path, *, wall_time: float) -> None:
        """The record (and any other data file), under `out`."""

    @abc.abstractmethod
    def report(self, data: Any, args: argparse.Namespace) -> list[str]:
        """What the command prints once the outputs are written."""

    @final
    def main(self, args: argparse.Namespace) -> None:
        config = self.configure(args)
        writer = jax.process_index() == 0
        if writer and self.record is None:
            check_out_dir(args.out)
        elif writer:
            refuse_existing(args.out, overwrite=args.overwrite, name=self.record)
        start = time.perf_counter()
        stream = load_stream(config)
        print(f"data: {stream.origin}", flush=True)
        data = self.run(config, stream, args, key=jax.random.key(config.run.seed))
        if not writer:
            print(f"{self.name}: process {jax.process_index()} done; process 0 writes the outputs")
            return
        self.plot(data, args.out)  # before the record, which marks the run complete
        self.write(data, config, args.out, wall_time=time.perf_counter() - start)
        for line in self.report(data, args):
            print(line)

    @final
    def register(self, subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
        """Add the command to `nfd-sde` (`Command.register`)."""
        command = Command(self.name, self.help, self.description, self.add_arguments, self.main)
        return command.register(subparsers)


def with_meta(data: dict[str, Any], config: Config, *, wall_time: float) -> dict[str, Any]:
    """`data` with `config` and the run's metadata (`run_meta`: seed, versions, device, the
    command's wall time); data that carries its own `meta` (the measurement's) keeps it, with
    the command's wall time added as `command_wall_time_s`."""
    if "meta" in data:
        meta = {**data["meta"], "command_wall_time_s": wall_time}
    else:
        meta = run_meta(config, wall_time=wall_time)
    return {**data, "config": to_dict(config), "meta": meta}


def write_record(
    path: str | Path, data: dict[str, Any], config: Config, *, wall_time: float
) -> Path:
    """Write `with_meta(data, config, wall_time=...)` to `path` as JSON, atomically."""
    return write_json(path, with_meta(data, config, wall_time=wall_time))
