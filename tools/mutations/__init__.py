"""Mutation check: do the tests catch small, plausible errors in the limit and its tools?

`python -m tools.mutations` applies each named mutation of `CATALOGUE` (a file, an exact source
snippet and its replacement) to a temporary copy of the repository, runs the tests that should
catch it there (the copy imported, not the editable install) and prints which mutations were
killed, survived, or are stale (the snippet is gone: update the catalogue after a refactor).
See `python -m tools.mutations --help`.
"""

from ._catalogue import CATALOGUE as CATALOGUE, Mutation as Mutation
from ._runner import Outcome as Outcome, run_mutation as run_mutation
