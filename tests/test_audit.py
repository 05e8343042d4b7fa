"""`nfd-sde audit` end to end at the fast scale: the HTML report is well formed with one section
per claim and every image a PNG, the Markdown report's images exist, each claim is cached with
its config and metadata, and a rerun recomputes exactly the claims whose cache file was removed
(the rest of the report unchanged). The default suite audits the three cheapest claims (about
35 s on 2 cores, `CHEAP`); the whole fast audit (every claim, within its time budget, every
claim's figure and row) is `slow`. Each audit runs once per module."""

import base64
import html.parser
import io
import json
import re
import shutil
import time

import matplotlib.image
import pytest

import nfd_sde._cli as cli
from nfd_sde.experiments import CLAIMS, SCALES, run_audit
from nfd_sde.experiments.audit._verdicts import VERDICTS
from tests._figures import layout_defects

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
VOID = {"meta", "img", "br", "hr", "link", "input"}
RECOMPUTED = "norms"  # the cheapest claim: the resume test recomputes it
# the cheapest claims at the fast scale (22, 8 and 5 s of the audit's 3.4 min on 2 cores)
CHEAP = ("kernels", "transfer", "norms")


def _audited(tmp_path_factory, claims):
    out = tmp_path_factory.mktemp("audit") / "fast"
    start = time.process_time()
    result = run_audit("fast", out, claims=claims, progress=False)
    return out, result, time.process_time() - start


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    """The fast audit of the `CHEAP` claims."""
    return _audited(tmp_path_factory, CHEAP)


@pytest.fixture(scope="module")
def full_audit(tmp_path_factory):
    """The whole fast audit (slow tests only)."""
    return _audited(tmp_path_factory, None)


class _Checker(html.parser.HTMLParser):
    """Tag balance (every non-void tag closed in order), the <img> sources, the section ids."""

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.sections, self.errors = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def _sections(text: str) -> dict[str, str]:
    parts = re.split(r'(?=<section id=")', text)
    return {re.match(r'<section id="([^"]+)"', p).group(1): p for p in parts[1:]}


@pytest.mark.slow
def test_every_claim_runs_within_the_fast_budget(full_audit):
    out, result, cpu = full_audit
    assert [r["name"] for r in result["records"]] == [c.name for c in CLAIMS]
    assert result["computed"] == [c.name for c in CLAIMS]
    # CPU time, which other work sharing the cores inflates less than wall time: the fast audit
    # took 174 s of wall time and 234 s of CPU time on this project's 2 cores (the target is 3
    # minutes of wall time); 540 s catches a size gone wrong without failing on a busy machine
    assert cpu < 3 * 180, cpu
    for record in result["records"]:
        assert record["verdict"]["verdict"] in VERDICTS
        assert "error" not in record, record.get("error")


def test_the_audited_claims_run_and_decide(audit):
    _, result, _ = audit
    assert [r["name"] for r in result["records"]] == list(CHEAP) == result["computed"]
    for record in result["records"]:
        assert record["verdict"]["verdict"] in VERDICTS
        assert "error" not in record, record.get("error")


@pytest.mark.parametrize("which", ["audit", pytest.param("full_audit", marks=pytest.mark.slow)])
def test_claim_figures_have_a_clean_layout(which, request):
    _, result, _ = request.getfixturevalue(which)
    claims = {c.name: c for c in CLAIMS}
    for record in result["records"]:
        if record.get("data") is not None:
            figure = claims[record["name"]].figure(record["data"])
            assert layout_defects(figure) == [], record["name"]


def test_summary_table_states_the_numbers(audit):
    out, result, _ = audit
    text = (out / "report.md").read_text()
    assert "| claim | verdict | measured (95% interval) |" in text
    assert re.search(r"\| kernels \| [^|]+ \| linear: K_1\(x_0, x_0\): [-0-9.]+ \[", text)


@pytest.mark.slow
def test_summary_table_states_every_claims_numbers(full_audit):
    out, result, _ = full_audit
    text = (out / "report.md").read_text()
    for claim in CLAIMS:
        assert re.search(rf"\| {claim.name} \| [^|]+ \| [^|]+: ", text), claim.name
    assert re.search(r"\| convergence \| [^|]+ \| bias rate in n: ", text)


def test_html_report_is_well_formed_with_png_figures(audit):
    out, result, _ = audit
    checker = _Checker()
    checker.feed((out / "report.html").read_text())
    checker.close()
    assert not checker.errors and not checker.stack, (checker.errors, checker.stack)
    assert checker.sections == list(CHEAP)
    assert len(checker.images) == len(CHEAP)
    for src in checker.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix)
        raw = base64.b64decode(src[len(prefix) :], validate=True)
        assert raw.startswith(PNG_MAGIC)
        image = matplotlib.image.imread(io.BytesIO(raw), format="png")
        assert image.shape[0] > 100 and image.shape[1] > 100
    text = (out / "report.html").read_text()
    for section in _sections(text).values():
        for part in ("<b>Claim.</b>", "<b>Measured.</b>", "<b>Rule.</b>", "<b>Verdict: "):
            assert part in section


def test_markdown_report_links_existing_pngs(audit):
    out, _, _ = audit
    text = (out / "report.md").read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(links) == len(CHEAP)
    for link in links:
        raw = (out / link).read_bytes()
        assert raw.startswith(PNG_MAGIC)
        matplotlib.image.imread(out / link)
    assert text.count("**Verdict: ") == len(CHEAP)


def test_each_claim_is_cached_with_config_and_metadata(audit):
    out, _, _ = audit
    for name in CHEAP:
        record = json.loads((out / "claims" / f"{name}.json").read_text())
        assert record["config"]["run"]["seed"] == 0
        assert {"versions", "device", "seed", "wall_time_s"} <= set(record["meta"])
        assert record["scale"] == "fast"


def test_rerun_recomputes_only_the_removed_claim(audit, tmp_path):
    out, _, _ = audit
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    before_html = _sections((copy / "report.html").read_text())
    (copy / "claims" / f"{RECOMPUTED}.json").unlink()
    result = run_audit("fast", copy, claims=CHEAP, progress=False)
    assert result["computed"] == [RECOMPUTED]
    after_html = _sections((copy / "report.html").read_text())
    assert after_html.keys() == before_html.keys()
    for name in before_html:
        if name != RECOMPUTED:
            assert after_html[name] == before_html[name], name
    # nothing left to do: a third run measures nothing and rewrites the same report
    again = run_audit("fast", copy, claims=CHEAP, progress=False)
    assert again["computed"] == []
    assert _sections((copy / "report.html").read_text()) == after_html


def test_mistakes_are_refused_before_any_work(audit, tmp_path, capsys):
    out, _, _ = audit
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["audit", "--scale", "huge", "--out", str(tmp_path / "a")])
    assert exit_info.value.code == 2
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert cli.main(["audit", "--out", str(blocker)]) == 2
    assert "not a directory" in capsys.readouterr().err
    # an audit of another scale in the same directory
    assert cli.main(["audit", "--scale", "standard", "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["audit", "--claims", "nonsense", "--out", str(tmp_path / "b")]) == 2
    assert cli.main(["audit", "--data", "cifar10", "--out", str(tmp_path / "c")]) == 2
    assert "--data-path" in capsys.readouterr().err


def test_scales_grow_and_plan_every_claim():
    names = [c.name for c in CLAIMS]
    fast, standard = SCALES["fast"], SCALES["standard"]
    # the fast scale was measured at 174 s on 2 CPU cores before claim 3 moved onto the limit
    # itself (about 30 s more: three compiled depths); the planned total: 208 s
    assert fast.planned_total(names) <= 210
    assert standard.planned_total(names) <= 3600
    for scale in SCALES.values():
        assert set(scale.planned_s) == set(names)
    assert max(standard.compare.widths) >= max(fast.compare.widths)
