"""The lab's machinery: registry, runner, report files and the ``mldl lab`` command."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

import mldl.lab
from mldl.cli import main
from mldl.lab import REGISTRY, VERDICTS, Claim, Context, Evidence, run_claim, select
from mldl.lab.core import claim, verdict
from mldl.lab.runner import load_claims, run


def _fake(id: str, experiment, decide=lambda n: verdict(n["x"] > 0, f"x = {n['x']}")) -> Claim:
    return Claim(id, "a section", "a statement", "a method", "x > 0", experiment, decide)


def test_every_registered_claim_is_complete():
    claims = load_claims()
    assert claims, "no claims registered"
    for c in claims.values():
        assert c.id and c.section and c.statement and c.method and c.criterion
        assert callable(c.experiment) and callable(c.decide)


def test_the_verdict_comes_from_the_numbers():
    result = run_claim(_fake("t.ok", lambda ctx: Evidence({"x": 2})), Context(profile="tiny"))
    assert (result.verdict, result.reason) == ("supported", "x = 2")
    result = run_claim(_fake("t.no", lambda ctx: Evidence({"x": -1})), Context(profile="tiny"))
    assert result.verdict == "not supported"


def test_a_failing_claim_is_reported_and_the_others_still_run():
    def boom(ctx):
        raise RuntimeError("deliberate")

    claims = [_fake("t.boom", boom), _fake("t.fine", lambda ctx: Evidence({"x": 1}))]
    results = run(claims, Context(profile="tiny"))
    assert [r.verdict for r in results] == ["error", "supported"]
    assert "RuntimeError: deliberate" in results[0].reason
    assert "Traceback" in results[0].error


def test_a_decide_returning_an_unknown_verdict_is_an_error():
    c = _fake("t.bad", lambda ctx: Evidence({"x": 1}), decide=lambda n: ("probably", "?"))
    assert run_claim(c, Context(profile="tiny")).verdict == "error"


def test_claim_ids_are_unique_and_fields_required():
    with pytest.raises(ValueError, match="registered twice"):
        claim(
            id=next(iter(load_claims())),
            section="s",
            statement="s",
            method="m",
            criterion="c",
            decide=lambda n: ("supported", ""),
        )(lambda ctx: Evidence({}))
    with pytest.raises(ValueError, match="statement must not be empty"):
        Claim("t.empty", "s", " ", "m", "c", lambda ctx: Evidence({}), lambda n: ("", ""))


def test_select_by_id_and_prefix():
    ids = [c.id for c in select(["mle"])]
    assert ids and all(i.startswith("mle.") for i in ids)
    assert [c.id for c in select(["mle.consistency"])] == ["mle.consistency"]
    with pytest.raises(ValueError, match="no claim matches"):
        select(["no.such.claim"])


def test_same_seed_same_numbers_other_seed_other_numbers():
    c = REGISTRY["mle.consistency"]
    a = run_claim(c, Context(profile="tiny", seed=3)).numbers
    b = run_claim(c, Context(profile="tiny", seed=3)).numbers
    other = run_claim(c, Context(profile="tiny", seed=4)).numbers
    assert a == b
    assert a != other


def test_worker_processes_give_the_same_results_in_order():
    claims = select(["mle"])
    alone = run(claims, Context(profile="tiny", seed=1))
    spread = run(claims, Context(profile="tiny", seed=1), jobs=2)
    assert [r.claim.id for r in spread] == [c.id for c in claims]
    # equal up to the last bits: a kernel's summation order may follow its buffers' alignment
    for a, b in zip(spread, alone, strict=True):
        _assert_close(a.numbers, b.numbers)
    assert [r.verdict for r in spread] == [r.verdict for r in alone]
    assert all(isinstance(f.figure, bytes) for r in spread for f in r.figures)


def _assert_close(a, b, where="numbers"):
    """Equal structure, equal strings and bools, numbers equal to 1e-6 relative."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _assert_close(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_close(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and not isinstance(a, bool):
        assert b == pytest.approx(a, rel=1e-6, abs=1e-12, nan_ok=True), where
    else:
        assert a == b, where


class _Page(HTMLParser):
    """Collects the tags and image sources of a page and checks that tags nest."""

    VOID = frozenset({"meta", "img", "br", "hr", "link", "input"})

    def __init__(self):
        super().__init__()
        self.stack, self.images, self.ids, self.errors = [], [], set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_mldl_lab_writes_a_self_contained_report(tmp_path, capsys):
    out = tmp_path / "report"
    code = main(
        ["lab", "--profile", "tiny", "--only", "mle", "--out", str(out), "--quiet", "--jobs", "1"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "mle.consistency" in printed and "index.html" in printed

    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["profile"] == "tiny"
    claims = {c["id"]: c for c in data["claims"]}
    assert set(claims) == {c.id for c in select(["mle"])}
    for c in claims.values():
        assert c["verdict"] in VERDICTS
        assert c["numbers"] and c["reason"]
        for fig in c["figures"]:
            assert (out / fig).stat().st_size > 1000  # a real PNG, also on disk

    page = _Page()
    page.feed((out / "index.html").read_text())
    assert not page.errors and page.stack == []
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images)
    assert {cid.replace(".", "-") for cid in claims} <= page.ids

    summary = (out / "summary.md").read_text()
    assert all(f"`{cid}`" in summary for cid in claims)


def test_mldl_lab_list_and_bad_arguments(capsys):
    assert main(["lab", "--list"]) == 0
    assert "mle.consistency" in capsys.readouterr().out
    assert main(["lab", "--only", "no.such.claim", "--quiet"]) == 2
    assert "no claim matches" in capsys.readouterr().err


def test_lab_package_exports():
    assert {"Claim", "Context", "Evidence", "claim", "run_claim"} <= set(mldl.lab.__all__)
