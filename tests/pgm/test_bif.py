"""The BIF reader and writer: exact round trips of the bnlearn networks in ``data/``, gzip and
plain text, ``table`` lists (unconditional, and conditional child-major as pgmpy reads them,
cross-checked with pgmpy when it is installed), malformed input rejected with BIFError at the
right line, a fuzz test of mutated files, and no code evaluation."""

from __future__ import annotations

import builtins
import contextlib
import gzip
import re
import signal
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mldl.pgm import BayesianNetwork, BIFError, parse_bif, read_bif, write_bif

DATA = Path(__file__).parent / "data"
NETWORKS = sorted(p.name.removesuffix(".bif.gz") for p in DATA.glob("*.bif.gz"))
F64 = torch.float64


def test_the_data_directory_has_the_networks():
    assert {"asia", "cancer", "earthquake", "survey", "sachs", "child", "alarm"} <= set(NETWORKS)


def _same(a, b) -> None:
    assert a.name == b.name
    assert a.states == b.states
    assert list(a.states) == list(b.states)  # variable order too
    assert a.parents == b.parents
    assert set(a.cpts) == set(b.cpts)
    for v in a.cpts:
        assert a.cpts[v].dtype == b.cpts[v].dtype == F64
        assert torch.equal(a.cpts[v], b.cpts[v]), v


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", NETWORKS)
def test_round_trip_is_exact(name, tmp_path):
    first = read_bif(DATA / f"{name}.bif.gz")
    text = write_bif(first)
    again = parse_bif(text)
    _same(first, again)
    assert write_bif(again) == text  # a fixed point
    # to files: plain and gzip
    plain, packed = tmp_path / f"{name}.bif", tmp_path / f"{name}.bif.gz"
    assert write_bif(first, plain) == text
    write_bif(first, packed)
    assert plain.read_text() == text
    assert gzip.decompress(packed.read_bytes()).decode() == text
    _same(first, read_bif(plain))
    _same(first, read_bif(packed))


@pytest.mark.parametrize("name", NETWORKS)
def test_gzip_and_plain_text_read_the_same(name, tmp_path):
    raw = gzip.decompress((DATA / f"{name}.bif.gz").read_bytes())
    (tmp_path / "plain.bif").write_bytes(raw)
    _same(read_bif(DATA / f"{name}.bif.gz"), read_bif(tmp_path / "plain.bif"))
    _same(read_bif(tmp_path / "plain.bif"), parse_bif(raw.decode()))


def test_bayesian_network_round_trip(tmp_path):
    bn = BayesianNetwork.read_bif(DATA / "alarm.bif.gz")
    bn.write_bif(tmp_path / "alarm.bif.gz")
    back = BayesianNetwork.read_bif(tmp_path / "alarm.bif.gz")
    assert back.variables == bn.variables and back.parents == bn.parents
    assert back.states == bn.states and back.name == bn.name
    for v in bn.variables:
        assert torch.equal(back.cpts[v], bn.cpts[v])


def test_values_read_match_the_file_by_hand():
    asia = read_bif(DATA / "asia.bif.gz")
    assert list(asia.states) == ["asia", "tub", "smoke", "lung", "bronc", "either", "xray", "dysp"]
    assert asia.states["xray"] == ["yes", "no"]
    assert asia.parents["dysp"] == ["bronc", "either"]
    assert asia.cpts["asia"].tolist() == [0.01, 0.99]
    assert asia.cpts["tub"].tolist() == [[0.05, 0.95], [0.01, 0.99]]
    # dysp | bronc, either: "(no, yes) 0.7, 0.3;" -> cpt[bronc=no, either=yes]
    assert asia.cpts["dysp"][1, 0].tolist() == [0.7, 0.3]
    assert asia.cpts["dysp"][0, 1].tolist() == [0.8, 0.2]
    # either | lung, tub: deterministic OR
    assert asia.cpts["either"][:, :, 0].tolist() == [[1.0, 1.0], [1.0, 0.0]]
    cancer = read_bif(DATA / "cancer.bif.gz")
    assert cancer.parents["Cancer"] == ["Pollution", "Smoker"]
    assert cancer.states["Pollution"] == ["low", "high"]
    # "(high, True) 0.05, 0.95;"
    assert cancer.cpts["Cancer"][1, 0].tolist() == [0.05, 0.95]
    assert cancer.cpts["Cancer"][0, 1].tolist() == [0.001, 0.999]


# ------------------------------------------------------------------------------- tables

HEAD = """network hand {
}
variable A {
  type discrete [ 2 ] { a0, a1 };
}
variable B {
  type discrete [ 3 ] { b0, b1, b2 };
}
variable C {
  type discrete [ 2 ] { c0, c1 };
}
probability ( A ) {
  table 0.25, 0.75;
}
probability ( B ) {
  table 0.2, 0.3, 0.5;
}
"""
# child-major: all of C = c0 over the configurations (a0 b0, a0 b1, a0 b2, a1 b0, ...), then
# all of C = c1
TABLE_C = """probability ( C | A, B ) {
  table 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4;
}
"""
P_C0 = [[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]]  # P(C = c0 | A = a, B = b)


def test_unconditional_and_conditional_tables():
    parsed = parse_bif(HEAD + TABLE_C)
    assert parsed.cpts["A"].tolist() == [0.25, 0.75]
    assert parsed.cpts["B"].tolist() == [0.2, 0.3, 0.5]
    c = parsed.cpts["C"]
    assert c.shape == (2, 3, 2)
    for a in range(2):
        for b in range(3):
            assert c[a, b, 0].item() == P_C0[a][b]
            assert c[a, b, 1].item() == pytest.approx(1 - P_C0[a][b], abs=1e-15)
    # the same as rows, one per configuration
    rows = "probability ( C | A, B ) {\n" + "".join(
        f"  (a{a}, b{b}) {P_C0[a][b]}, {[0.9, 0.8, 0.7, 0.6, 0.5, 0.4][3 * a + b]};\n"
        for a in range(2)
        for b in range(3)
    )
    assert torch.equal(parse_bif(HEAD + rows + "}\n").cpts["C"], c)


def test_default_row_fills_the_rest():
    text = HEAD + (
        "probability ( C | A, B ) {\n  (a1, b2) 0.6, 0.4;\n  default 0.5, 0.5;\n  "
        "(a0, b0) 0.1, 0.9;\n}\n"
    )
    c = parse_bif(text).cpts["C"][..., 0]
    assert c.tolist() == [[0.1, 0.5, 0.5], [0.5, 0.5, 0.6]]


def _pgmpy_cpts(text: str) -> dict[str, tuple[list[str], dict, torch.Tensor]]:
    """pgmpy's reading of BIF text: per variable, its parents, state names and the CPT as
    (*parents, own) in pgmpy's parent order."""
    pytest.importorskip("pgmpy")
    from pgmpy.readwrite import BIFReader

    model = BIFReader(string=text).get_model()
    out = {}
    for cpd in model.get_cpds():
        child, *evidence = cpd.variables
        values = torch.as_tensor(cpd.values, dtype=F64)  # (own, *evidence)
        values = values.permute(*range(1, values.dim()), 0)
        out[child] = (evidence, cpd.state_names, values)
    return out


def _agree_with_pgmpy(ours, theirs) -> None:
    assert set(ours.cpts) == set(theirs)
    for v, cpt in ours.cpts.items():
        evidence, names, values = theirs[v]
        assert sorted(evidence) == sorted(ours.parents[v])
        # put pgmpy's axes in our parent order and its states in ours
        values = values.permute(*[evidence.index(p) for p in ours.parents[v]], values.dim() - 1)
        for axis, u in enumerate([*ours.parents[v], v]):
            perm = [names[u].index(s) for s in ours.states[u]]
            values = values.index_select(axis, torch.tensor(perm))
        assert torch.allclose(cpt, values, atol=1e-12), v


def test_conditional_table_reads_as_pgmpy_reads_it():
    text = HEAD + TABLE_C
    _agree_with_pgmpy(parse_bif(text), _pgmpy_cpts(text))


@pytest.mark.parametrize("name", ["asia", "child"])
def test_bnlearn_networks_read_as_pgmpy_reads_them(name):
    text = gzip.decompress((DATA / f"{name}.bif.gz").read_bytes()).decode()
    _agree_with_pgmpy(parse_bif(text), _pgmpy_cpts(text))


def test_comments_properties_and_crlf():
    text = (
        "// a comment\nnetwork x {\n  property author = someone ;\n}\n/* a comment\n"
        "over lines */\nvariable A { property position = (1, 2) ;\n"
        "  type discrete [ 2 ] { a0, a1 };\n}\n"
        "probability ( A ) { property note = x ; table 0.5, 0.5; // trailing\n}\n"
    )
    for t in (text, text.replace("\n", "\r\n")):
        parsed = parse_bif(t)
        assert parsed.name == "x"
        assert parsed.states == {"A": ["a0", "a1"]}
        assert parsed.cpts["A"].tolist() == [0.5, 0.5]


def test_rows_within_tolerance_are_renormalised():
    text = (HEAD + TABLE_C).replace("table 0.25, 0.75;", "table 0.2498, 0.75;")  # 0.9998
    a = parse_bif(text).cpts["A"]
    assert a.tolist() == pytest.approx([0.2498 / 0.9998, 0.75 / 0.9998], abs=1e-15)
    assert float(a.sum()) == pytest.approx(1.0, abs=1e-15)
    with pytest.raises(BIFError, match="sums to"):
        parse_bif(text, tolerance=1e-5)
    # exact rows keep their values exactly
    assert parse_bif(HEAD + TABLE_C).cpts["B"].tolist() == [0.2, 0.3, 0.5]


# ---------------------------------------------------------------------- malformed input

BASE = """network tiny {
  property author = test ;
}
variable A {
  type discrete [ 2 ] { a0, a1 };
}
variable B {
  type discrete [ 3 ] { b0, b1, b2 };
}
variable C {
  type discrete [ 2 ] { c0, c1 };
}
probability ( A ) {
  table 0.25, 0.75;
}
probability ( B | A ) {
  (a0) 0.2, 0.3, 0.5;
  (a1) 0.6, 0.3, 0.1;
}
probability ( C | A, B ) {
  (a0, b0) 0.1, 0.9;
  (a0, b1) 0.2, 0.8;
  (a0, b2) 0.3, 0.7;
  (a1, b0) 0.4, 0.6;
  (a1, b1) 0.5, 0.5;
  (a1, b2) 0.6, 0.4;
}
"""
EXTRA_B = "variable B {\n  type discrete [ 2 ] { x, y };\n}\n"


def _line_of(text: str, fragment: str) -> int:
    hits = [i for i, line in enumerate(text.splitlines(), 1) if fragment in line]
    assert len(hits) == 1, (fragment, hits)
    return hits[0]


def _replace(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def _error_line(text: str) -> tuple[int | None, str]:
    with pytest.raises(BIFError) as info:
        parse_bif(text)
    message = str(info.value)
    m = re.search(r"line (\d+):", message)
    return (int(m.group(1)) if m else None), message


def test_base_text_is_valid():
    parsed = parse_bif(BASE)
    assert parsed.name == "tiny"
    assert parsed.parents == {"A": [], "B": ["A"], "C": ["A", "B"]}
    assert parsed.cpts["C"][1, 2].tolist() == [0.6, 0.4]


# (case, old fragment, new fragment, fragment on the line the error must name, message)
CASES = [
    ("unknown parent", "( C | A, B )", "( C | A, D )", "( C | A, D )", "undeclared variable 'D'"),
    ("unknown child", "( A )", "( X )", "( X )", "undeclared variable 'X'"),
    ("unknown state", "(a1, b2) 0.6", "(a1, b9) 0.6", "(a1, b9)", "'b9' is not a state of 'B'"),
    ("row too short", "(a0) 0.2, 0.3, 0.5;", "(a0) 0.5, 0.5;", "(a0) 0.5", "row has 2 values"),
    ("row too long", "(a0, b1) 0.2, 0.8;", "(a0, b1) 0.2, 0.3, 0.5;", "(a0, b1)", "3 values"),
    ("table size", "table 0.25, 0.75;", "table 0.25, 0.25, 0.5;", "table", "table has 3 values"),
    ("parents in row", "(a0, b1) 0.2", "(a0) 0.2", "(a0) 0.2, 0.8", "row names 1 parent"),
    ("state count", "[ 3 ] { b0, b1, b2 }", "[ 4 ] { b0, b1, b2 }", "[ 4 ]", "declares 4"),
    ("state twice", "{ c0, c1 }", "{ c0, c0 }", "{ c0, c0 }", "a state twice"),
    ("continuous", "discrete [ 2 ] { c0", "continuous [ 2 ] { c0", "continuous", "only discrete"),
    ("keyword", "variable B {", "varable B {", "varable", "expected 'network', 'variable'"),
    ("number", "table 0.25, 0.75;", "table 0.25, zero;", "zero", "expected a probability"),
    ("not finite", "table 0.25, 0.75;", "table 0.25, inf;", "inf", "finite"),
    ("separator", "(a1) 0.6, 0.3, 0.1;", "(a1) 0.6 0.3, 0.1;", "(a1) 0.6 0.3", "expected ','"),
    ("count token", "[ 2 ] { a0, a1 }", "[ two ] { a0, a1 }", "[ two ]", "number of states"),
    ("block junk", "  (a1, b1) 0.5, 0.5;", "  junk (a1, b1) 0.5, 0.5;", "junk", "unexpected"),
    ("no type", "variable C {\n  type discrete [ 2 ] { c0, c1 };\n}", "variable C {\n}",
     "variable C", "no 'type discrete' line"),
    ("repeated parent", "( C | A, B )", "( C | A, A )", "( C | A, A )", "repeats a variable"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "old", "new", "at", "message"), CASES, ids=[c[0] for c in CASES])
def test_malformed_input_names_the_line(case, old, new, at, message):
    text = _replace(old, new)
    line, got = _error_line(text)
    assert message in got
    assert line == _line_of(text, at), got


@pytest.mark.parametrize(
    ("case", "new"),
    [("negative", "(a1, b1) -0.5, 1.5;"), ("sum", "(a1, b1) 0.5, 0.4;")],
)
def test_bad_probabilities_name_the_row_line(case, new):
    # Fixed bug: a negative probability or a row not summing to 1 is reported at the
    # probability block's first line ("probability ( C | A, B ) {", line 20) instead of
    # the offending row's line (25): _assemble passes child_tok, not the row's token.
    text = _replace("(a1, b1) 0.5, 0.5;", new)
    line, got = _error_line(text)
    assert ("negative" if case == "negative" else "sums to") in got
    assert line == _line_of(text, new), got


@pytest.mark.parametrize(
    ("case", "new"),
    [("negative", "(a1, b1) -0.5, 1.5;"), ("sum", "(a1, b1) 0.5, 0.4;")],
)
def test_bad_probabilities_raise(case, new):
    line, got = _error_line(_replace("(a1, b1) 0.5, 0.5;", new))
    assert ("negative probability -0.5" if case == "negative" else "sums to 0.9") in got
    assert line is not None


def test_missing_parent_configuration():
    text = _replace("  (a0, b2) 0.3, 0.7;\n", "")
    line, got = _error_line(text)
    assert "(a0, b2)" in got and "'C'" in got
    assert line == _line_of(text, "( C | A, B )")


def test_duplicate_variable():
    text = _replace("variable C {", EXTRA_B + "variable C {")
    line, got = _error_line(text)
    assert "'B' is declared twice (first on line 7)" in got
    assert line == _line_of(text, "{ x, y }") - 1


def test_duplicate_block():
    text = BASE + "probability ( A ) {\n  table 0.5, 0.5;\n}\n"
    line, got = _error_line(text)
    assert "second probability block for 'A'" in got
    assert line == len(BASE.splitlines()) + 1


def test_missing_block():
    text = _replace("probability ( A ) {\n  table 0.25, 0.75;\n}\n", "")
    with pytest.raises(BIFError, match=r"no probability block for \['A'\]"):
        parse_bif(text)


def test_line_numbers_count_comment_lines():
    text = "/* one\ntwo\nthree */\n" + _replace("(a1, b2) 0.6", "(a1, b9) 0.6")
    line, _ = _error_line(text)
    assert line == _line_of(text, "(a1, b9)") == 29


def test_truncated_files_raise():
    end = BASE.rstrip().rfind("}")
    last_block = BASE.index("probability ( C")
    # (a file cut right after its network block is a valid empty network)
    for cut in range(BASE.index("variable") + 1, end):
        if not BASE[cut:end].strip():
            continue
        with pytest.raises(BIFError) as info:
            parse_bif(BASE[:cut])
        if cut > last_block + len("probability ( C"):
            assert "end of file" in str(info.value), (cut, str(info.value))


def test_cycle_is_rejected_by_the_network(tmp_path):
    text = _replace("probability ( A ) {\n  table 0.25, 0.75;\n}", "probability ( A | C ) {\n"
                    "  (c0) 0.25, 0.75;\n  (c1) 0.5, 0.5;\n}")  # fmt: skip
    parse_bif(text)  # the file itself is well formed
    (tmp_path / "cycle.bif").write_text(text)
    with pytest.raises(ValueError, match="cycle") as info:
        BayesianNetwork.read_bif(tmp_path / "cycle.bif")
    assert re.search(r"(A -> C -> A|C -> A -> C)", str(info.value)), str(info.value)


def test_corrupt_gzip_raises_bif_error(tmp_path):
    # Fixed bug: read_bif calls gzip.decompress on anything starting with the gzip magic
    # and lets EOFError / gzip.BadGzipFile / zlib.error through: a truncated or corrupt
    # .bif.gz is malformed input and should raise BIFError like any other.
    packed = (DATA / "asia.bif.gz").read_bytes()
    for i, data in enumerate([packed[: len(packed) // 2], packed[:2] + b"garbage" * 10]):
        (tmp_path / f"bad{i}.bif.gz").write_bytes(data)
        with pytest.raises(BIFError):
            read_bif(tmp_path / f"bad{i}.bif.gz")


def test_latin1_file_is_read(tmp_path):
    text = BASE.replace("a0, a1", "caf\xe9, a1").replace("(a0", "(caf\xe9")
    (tmp_path / "latin.bif").write_bytes(text.encode("latin-1"))
    assert read_bif(tmp_path / "latin.bif").states["A"] == ["caf\xe9", "a1"]


# ----------------------------------------------------------------------- no evaluation


def test_the_reader_never_evaluates_code(tmp_path, monkeypatch):
    sentinel = tmp_path / "pwned"
    payload = f"__import__('os').system('touch {sentinel}')"

    def refuse(*args, **kwargs):
        raise AssertionError("the BIF reader evaluated code")

    names = ["__import__", "eval", "exec", "os.system", "__builtins__", "$HOME", "`id`"]
    text = BASE.replace("a0", names[0]).replace("b0", names[1]).replace("b1", names[2])
    text = text.replace("b2", names[3]).replace("c0", names[4]).replace("c1", names[5])
    text = text.replace("network tiny", "network " + names[6])
    with monkeypatch.context() as m:
        m.setattr(builtins, "eval", refuse)
        m.setattr(builtins, "exec", refuse)
        parsed = parse_bif(text)
        assert parsed.name == "`id`"
        assert parsed.states["A"] == ["__import__", "a1"]
        assert parsed.states["B"] == ["eval", "exec", "os.system"]
        assert parsed.states["C"] == ["__builtins__", "$HOME"]
        assert parsed.cpts["C"][0, 0].tolist() == [0.1, 0.9]
        # code where names and numbers go is a syntax error, not a program
        for old in ("a0", "0.25", "tiny", "A {"):
            bad = BASE.replace(old, payload, 1)
            with pytest.raises(BIFError):
                parse_bif(bad)
            (tmp_path / "bad.bif").write_text(bad)
            with pytest.raises(BIFError):
                read_bif(tmp_path / "bad.bif")
    assert not sentinel.exists()


# ----------------------------------------------------------------------------- fuzzing


@contextlib.contextmanager
def _deadline(seconds: float):
    """Fail (instead of hanging) when the block runs longer than ``seconds``."""

    def alarm(signum, frame):
        raise TimeoutError(f"the BIF reader ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


_PIECES = re.compile(r"\s+|[{}()\[\],;|]|[^\s{}()\[\],;|]+")
_TOKENS = [
    *"{}()[],;|",
    "variable", "probability", "network", "table", "default", "property", "type",
    "discrete", "A", "B", "C", "a0", "b1", "c1", "0", "1", "-1", "0.5", "1e309", "nan",
    "-0.0", "1_0", "²", "3", "99999999", "/*", "*/", "//", "\n", " ", "\x00", "é",
    "__import__('os')",
]  # fmt: skip


@st.composite
def mutated_texts(draw):
    pieces = _PIECES.findall(BASE)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "duplicate", "replace", "insert", "chars"]))
        i = draw(st.integers(0, len(pieces) - 1))
        if kind == "delete":
            del pieces[i]
        elif kind == "duplicate":
            pieces.insert(i, pieces[i])
        elif kind == "replace":
            pieces[i] = draw(st.sampled_from(_TOKENS))
        elif kind == "insert":
            pieces.insert(i, " " + draw(st.sampled_from(_TOKENS)) + " ")
        else:
            pieces.insert(i, draw(st.text(min_size=1, max_size=5)))
        if not pieces:
            break
    return "".join(pieces)


def _valid_result(parsed) -> None:
    for v, cpt in parsed.cpts.items():
        assert v in parsed.states
        assert cpt.shape[-1] == len(parsed.states[v])
        assert bool((cpt >= 0).all())
        assert torch.allclose(cpt.sum(-1), torch.ones((), dtype=F64), atol=1e-12)


@settings(max_examples=min(150, 3 * settings.default.max_examples))
@given(mutated_texts())
def test_fuzz_mutated_text_parses_or_raises_bif_error(text):
    with _deadline(10):
        try:
            parsed = parse_bif(text)
        except ValueError:  # BIFError is one; an unexpected ValueError is tolerated
            return
        _valid_result(parsed)
        with contextlib.suppress(ValueError):
            BayesianNetwork(parsed.states, parsed.parents, parsed.cpts, tolerance=1e-3)


@settings(max_examples=min(60, settings.default.max_examples))
@given(st.data())
def test_fuzz_random_bytes_through_read_bif(data):
    raw = bytearray(BASE.encode())
    for _ in range(data.draw(st.integers(1, 6))):
        i = data.draw(st.integers(0, len(raw)))
        chunk = data.draw(st.binary(min_size=1, max_size=4))
        if data.draw(st.booleans()):
            raw[i : i + len(chunk)] = chunk
        else:
            raw[i:i] = chunk
    if raw[:2] == b"\x1f\x8b":  # corrupt gzip is the subject of its own test
        raw[:1] = b" "
    with tempfile.TemporaryDirectory() as d, _deadline(10):
        path = Path(d) / "fuzz.bif"
        path.write_bytes(bytes(raw))
        try:
            parsed = read_bif(path)
        except ValueError:
            return
        _valid_result(parsed)
