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
        parser = subparsers.add_parser(
            self.name, help=self.help, description=self.description, formatter_class=HelpFormatter
        )
        self.add_arguments(parser)
        # the parser travels with the arguments: a flag it does not know points to its help
        parser.set_defaults(command=self.main, command_parser=parser)
        return parser


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every option's default in its help, `(default: 2,4,8)`, unless the help already states
    it or there is none to state (a switch, an option whose absence means something else)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if "default" in text or default in (None, False, True, argparse.SUPPRESS, [], ()):
            return text
        if not action.option_strings and action.nargs not in ("?", "*"):
            return text
        if isinstance(default, list | tuple):
            default = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default)
        return f"{text} (default: {str(default).replace('%', '%%')})"
