"""The `nfd-sde` command line: one subcommand per registered experiment (`experiments.COMMANDS`).

Mistakes in the input (missing file, bad override, invalid value, sizes too large to allocate)
end with a one-line `error: ...` on stderr and exit status 2.

`--distributed` joins a multi-process run (`jax.distributed.initialize`) before any work: every
process runs the same command, the devices of all processes form one mesh, and process 0 writes
the outputs.
"""

import argparse
import sys
from collections.abc import Sequence

import jax

from .experiments import COMMANDS

USAGE_ERROR = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (and exit status 2), like ours."""

    def error(self, message: str):
        self.exit(USAGE_ERROR, f"error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nfd-sde",
        description="Finite depth-muP ResNets and their Neural Feature Dynamics (NFD) limit.",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="join a multi-process run (jax.distributed.initialize) before any work; on a "
        "cluster JAX detects (SLURM, Open MPI, ...) nothing else is needed, otherwise give "
        "--coordinator, --num-processes and --process-id",
    )
    parser.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address")
    parser.add_argument("--num-processes", type=int, metavar="P", help="processes in the run")
    parser.add_argument("--process-id", type=int, metavar="I", help="this process, 0..P-1")
    subparsers = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0, or 2 for a mistake in the input)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # point to the help of the command that was given, not to the top level's
        getattr(args, "command_parser", parser).error(
            f"unrecognized arguments: {' '.join(unknown)}"
        )
    try:
        if args.distributed:
            _join(args)
        args.command(args)
    except (ValueError, OSError) as error:
        print(f"error: {_one_line(error)}", file=sys.stderr)
        return USAGE_ERROR
    except MemoryError as error:  # sizes far too large for this machine
        print(f"error: out of memory ({_one_line(error)}); reduce the sizes", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return 0


def _join(args: argparse.Namespace) -> None:
    try:
        jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    except RuntimeError as error:  # no cluster detected, coordinator unreachable, too late
        raise ValueError(f"--distributed: {error}") from error


def _one_line(error: BaseException) -> str:
    text = str(error)
    if isinstance(error, OSError) and error.strerror and error.filename is None:
        text = error.strerror  # our own messages (they name the file): no "[Errno N]" prefix
    return " ".join(text.split()) or type(error).__name__


if __name__ == "__main__":
    sys.exit(main())
