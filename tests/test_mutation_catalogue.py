"""The mutation catalogue (tools/mutations, docs/mutations.md) stays applicable: every mutation's
snippet occurs exactly once in the file it names, so `python -m tools.mutations` mutates what the
catalogue says rather than reporting it stale. A refactor that moves or rewrites a mutated line
fails here and must carry the mutation along."""

from pathlib import Path

import pytest

from tools.mutations._catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("mutation", CATALOGUE, ids=lambda m: m.name)
def test_every_mutation_applies_exactly_once(mutation):
    path = ROOT / mutation.path
    assert path.is_file(), f"{mutation.name}: {mutation.path} is gone"
    count = path.read_text().count(mutation.find)
    assert count == 1, f"{mutation.name}: the snippet occurs {count} times in {mutation.path}"
    assert mutation.replace != mutation.find, f"{mutation.name} changes nothing"
