"""The command line's help: every option's default is shown, an unknown flag points to the help
of the command it was given to, `norms` takes `--widths` like the others (and `--width`), and
the `--lrs` range syntax is defined where it is used."""

import argparse

import pytest

import nfd_sde._cli as cli
from nfd_sde.experiments.common._arguments import learning_rates_type


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = cli.build_parser()
    (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(subparsers.choices)


@pytest.mark.parametrize("name", list(_commands()))
def test_every_default_is_in_the_help(name):
    parser = _commands()[name]
    formatter = parser._get_formatter()
    for action in parser._actions:
        if not action.option_strings or action.default in (None, False, True, [], ()):
            continue
        if action.default is argparse.SUPPRESS:
            continue
        text = formatter._expand_help(action) if action.help else ""
        assert "default" in text, f"{name} {action.option_strings[0]}: {text!r}"


@pytest.mark.parametrize(
    ("name", "flag", "shown"),
    [("demo", "--out", "runs/demo"), ("collapse", "--depths", "4,8,16,32"),
     ("collapse", "--c", "0,0.5"), ("transfer", "--c", "0"), ("norms", "--depths", "4,16,64")],
)  # fmt: skip
def test_the_issue_s_defaults_are_shown(name, flag, shown):
    parser = _commands()[name]
    (action,) = [a for a in parser._actions if flag in a.option_strings]
    assert f"(default: {shown})" in parser._get_formatter()._expand_help(action)


def test_an_unknown_flag_points_to_its_command_s_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["demo", "--bogus"])
    assert exit_.value.code == cli.USAGE_ERROR
    assert "unrecognized arguments: --bogus (see `nfd-sde demo --help`)" in capsys.readouterr().err


def test_norms_takes_widths_and_width():
    parser = cli.build_parser()
    for flag in ("--widths", "--width"):
        assert parser.parse_args(["norms", flag, "8", "--out", "o"]).widths == (8,)


def test_learning_rate_ranges_are_defined_in_the_help():
    assert learning_rates_type("2^-1:1") == (0.5, 1.0, 2.0)
    parser = _commands()["transfer"]
    (action,) = [a for a in parser._actions if "--lrs" in a.option_strings]
    assert "every 2^k for the integers k = a..b" in action.help
