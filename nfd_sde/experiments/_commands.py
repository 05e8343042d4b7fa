"""How an experiment joins the command line: a `Command` names it and brings its arguments and
its entry point; `nfd-sde` adds every registered command in order."""

import argparse
import dataclasses
from collections.abc import Callable


@dataclasses.dataclass(frozen=True)
class Command:
    """`add_arguments(parser)` declares the flags; `main(args)` runs the experiment and writes
    its outputs, raising ValueError or OSError for a mistake in the input."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    main: Callable[[argparse.Namespace], None]

    def register(self, subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(self.name, help=self.help, description=self.description)
        self.add_arguments(parser)
        parser.set_defaults(command=self.main)
        return parser
