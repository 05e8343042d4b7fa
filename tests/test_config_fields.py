"""Every config field is documented in one place (`nfd_sde.model._config_fields`), and the README's
config table and `configs/example.toml` agree with it and with the config classes."""

import re
import tomllib
from pathlib import Path

from nfd_sde.model._config_fields import MEANINGS, config_fields, config_table, toml_value

ROOT = Path(__file__).resolve().parents[1]


def test_every_field_has_a_meaning_and_nothing_else_does():
    fields = config_fields()
    assert list(MEANINGS) == list(fields)
    for section, names in fields.items():
        assert set(MEANINGS[section]) == set(names), section


def test_readme_table_is_the_generated_one():
    assert config_table() in (ROOT / "README.md").read_text()
    for name in ("groups", "levels", "control_variates"):
        assert f"| `{name}` |" in config_table()


def test_example_config_sets_or_names_every_field():
    text = (ROOT / "configs" / "example.toml").read_text()
    sections = re.split(r"^\[(\w+)\]\s*$", text, flags=re.M)
    bodies = dict(zip(sections[1::2], sections[2::2]))
    parsed = tomllib.loads(text)
    for section, fields in config_fields().items():
        for name, default in fields.items():
            # set (`name = value`) or named in a comment (`# name = value`, a default left unset)
            match = re.search(rf"^#? ?{name} = (.*?)(\s+#.*)?$", bodies[section], flags=re.M)
            assert match, f"{section}.{name} is not in configs/example.toml"
            if name not in parsed.get(section, {}):  # named only: it must show the default
                assert match.group(1) == toml_value(default) or default is None, name
