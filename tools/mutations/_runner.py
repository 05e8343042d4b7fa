"""Apply one mutation to a temporary copy of the repository and run tests there."""

import dataclasses
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ._catalogue import Mutation

ROOT = Path(__file__).resolve().parents[2]
# pytest exit codes: 0 all passed, 1 some failed, 2 interrupted (e.g. a collection error),
# 5 no tests collected
PASSED, FAILED, INTERRUPTED, NO_TESTS = 0, 1, 2, 5


@dataclasses.dataclass(frozen=True)
class Outcome:
    name: str
    status: str  # killed | survived | stale | error | timeout
    seconds: float
    detail: str


def repository_files(root: Path = ROOT) -> list[str]:
    """Tracked files and untracked files git does not ignore (no .venv, caches, runs)."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return [f for f in listed if (root / f).is_file()]


def copy_repository(destination: Path, root: Path = ROOT) -> None:
    for name in repository_files(root):
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, target)


def apply(mutation: Mutation, copy: Path) -> str | None:
    """Mutate the copy; returns why not (stale or ambiguous snippet), or None."""
    path = copy / mutation.path
    if not path.is_file():
        return f"stale: {mutation.path} is gone"
    text = path.read_text()
    count = text.count(mutation.find)
    if count != 1:
        return f"stale: the snippet occurs {count} times in {mutation.path}"
    path.write_text(text.replace(mutation.find, mutation.replace))
    return None


def _environment(copy: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(copy), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports_the_copy(copy: Path) -> None:
    """Fail loudly if the copy's interpreter would import the editable install instead."""
    probe = "import nfd_sde, solvers, tests; print(nfd_sde.__file__, solvers.__file__)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=copy,
        env=_environment(copy),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if any(not Path(p).resolve().is_relative_to(copy.resolve()) for p in out.split()):
        raise RuntimeError(f"the copy at {copy} imports {out.strip()}, not its own modules")


def run_tests(
    copy: Path, tests: list[str], *, timeout: float, extra: list[str], stop: bool
) -> tuple:
    command = [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "-rfE"]
    command += ["-x"] if stop else []
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command + extra,
            cwd=copy,
            env=_environment(copy),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None, "", time.perf_counter() - start
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - start


def _failures(output: str) -> str:
    """The failing tests pytest's short summary names (file::test), or its last line."""
    found = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.MULTILINE)
    names = list(dict.fromkeys(f.removeprefix("tests/") for f in found))
    if names:
        return ", ".join(names)
    return output.strip().splitlines()[-1] if output.strip() else ""


def run_mutation(
    mutation: Mutation | None,
    tests: list[str],
    *,
    timeout: float = 1800.0,
    extra: list[str] = (),
    keep: bool = False,
    stop: bool = True,
) -> Outcome:
    """Copy the repository, apply `mutation` (None: the unmutated baseline), run `tests`."""
    name = "(none: baseline)" if mutation is None else mutation.name
    copy = Path(tempfile.mkdtemp(prefix="nfd-mutation-"))
    try:
        copy_repository(copy)
        if mutation is not None:
            why = apply(mutation, copy)
            if why is not None:
                return Outcome(name, "stale", 0.0, why)
        check_imports_the_copy(copy)
        code, output, seconds = run_tests(
            copy, tests, timeout=timeout, extra=list(extra), stop=stop
        )
    finally:
        if not keep:
            shutil.rmtree(copy, ignore_errors=True)
    if code is None:
        return Outcome(name, "timeout", seconds, f"no verdict within {timeout:.0f} s")
    if code == PASSED:
        return Outcome(name, "survived", seconds, "all selected tests passed")
    if code in (FAILED, INTERRUPTED):
        return Outcome(name, "killed", seconds, _failures(output))
    return Outcome(name, "error", seconds, f"pytest exit code {code}: {_failures(output)}")
