"""The BIF format (bnlearn's networks): a reader that treats its file as untrusted, and a
writer.

The reader tokenises and parses by hand (it never evaluates anything), accepts gzip, and
rejects malformed input with an error naming the line: unknown variables or states in a
probability block, tables of the wrong size, negative probabilities, rows that do not sum
to 1 within ``tolerance`` (then renormalised exactly), missing or repeated blocks, and
corrupt gzip. Cycles are legal BIF syntax; :class:`~mldl.pgm.BayesianNetwork` refuses them.
``table`` lists of a conditional are read child-major, as pgmpy reads them.
"""

from __future__ import annotations

import gzip
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["BIFError", "parse_bif", "read_bif", "write_bif"]

_TOKEN = re.compile(r"//[^\n]*|/\*.*?\*/|[{}()\[\],;|]|[^\s{}()\[\],;|]+", re.S)
_MAX_STATES = 10_000
_MAX_TABLE = 50_000_000


class BIFError(ValueError):
    """A malformed BIF file; the message names the line."""


@dataclass
class _Token:
    text: str
    line: int


def _tokens(text: str) -> list[_Token]:
    out, line, pos = [], 1, 0
    for m in _TOKEN.finditer(text):
        line += text.count("\n", pos, m.start())
        pos = m.start()
        tok = m.group()
        if not tok.startswith(("//", "/*")):
            out.append(_Token(tok, line))
    return out


class _Parser:
    def __init__(self, tokens: list[_Token], source: str) -> None:
        self.t, self.i, self.source = tokens, 0, source

    def error(self, message: str, token: _Token | None = None) -> BIFError:
        token = token or (self.t[self.i] if self.i < len(self.t) else None)
        where = f"line {token.line}" if token else "end of file"
        return BIFError(f"read_bif: {self.source}, {where}: {message}")

    def peek(self) -> _Token | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self, expected: str | None = None) -> _Token:
        tok = self.peek()
        if tok is None:
            raise self.error(f"unexpected end of file (expected {expected or 'more'})")
        if expected is not None and tok.text != expected:
            raise self.error(f"expected {expected!r}, got {tok.text!r}", tok)
        self.i += 1
        return tok

    def name(self, what: str) -> _Token:
        tok = self.take()
        if tok.text in "{}()[],;|":
            raise self.error(f"expected {what}, got {tok.text!r}", tok)
        return tok

    def skip_statement(self) -> None:
        """Skip to the end of a ``property ...;`` statement."""
        while self.take().text != ";":
            pass

    def number_list(self, end: str = ";") -> tuple[list[float], _Token]:
        """Comma-separated numbers up to ``end``, and the first one's token (for errors)."""
        first, values, t, i = self.peek(), [], self.t, self.i
        while True:
            if i + 1 >= len(t):
                self.i = len(t)
                raise self.error(f"unexpected end of file (expected {end!r})")
            tok, sep = t[i], t[i + 1]
            try:
                v = float(tok.text)
            except ValueError:
                self.i = i
                raise self.error(f"expected a probability, got {tok.text!r}", tok) from None
            if not math.isfinite(v):
                raise self.error(f"expected a finite probability, got {tok.text!r}", tok)
            values.append(v)
            i += 2
            if sep.text == end:
                self.i = i
                return values, first
            if sep.text != ",":
                self.i = i - 1
                raise self.error(f"expected ',' or {end!r}, got {sep.text!r}", sep)

    def name_list(self, end: str) -> list[_Token]:
        names = [self.name("a name")]
        while True:
            sep = self.take()
            if sep.text == end:
                return names
            if sep.text != ",":
                raise self.error(f"expected ',' or {end!r}, got {sep.text!r}", sep)
            names.append(self.name("a name"))


@dataclass
class ParsedBIF:
    """What a BIF file declares: variables with their states (file order), each variable's
    parents, and its CPT as a tensor of shape (*parent cardinalities, own cardinality)."""

    name: str
    states: dict[str, list[str]]
    parents: dict[str, list[str]]
    cpts: dict[str, torch.Tensor]


def parse_bif(text: str, source: str = "<string>", *, tolerance: float = 1e-3) -> ParsedBIF:
    """Parse BIF text (see the module docstring for what is checked)."""
    p = _Parser(_tokens(text), source)
    name = "unknown"
    states: dict[str, list[str]] = {}
    declared: dict[str, _Token] = {}
    blocks: dict[str, tuple[_Token, list[_Token], list]] = {}
    while p.peek() is not None:
        kw = p.take()
        if kw.text == "network":
            name = p.name("a network name").text
            p.take("{")
            while (tok := p.peek()) is not None and tok.text != "}":
                if tok.text == "property":
                    p.skip_statement()
                else:
                    raise p.error(f"unexpected {tok.text!r} in the network block", tok)
            p.take("}")
        elif kw.text == "variable":
            var = p.name("a variable name")
            if var.text in declared:
                raise p.error(
                    f"variable {var.text!r} is declared twice (first on line "
                    f"{declared[var.text].line})",
                    var,
                )
            p.take("{")
            got_type = False
            while (tok := p.peek()) is not None and tok.text != "}":
                if tok.text == "property":
                    p.skip_statement()
                    continue
                p.take("type")
                kind = p.name("a type")
                if kind.text != "discrete":
                    raise p.error(f"only discrete variables are supported, got {kind.text!r}", kind)
                p.take("[")
                count_tok = p.take()
                if not count_tok.text.isdigit():
                    raise p.error(f"expected a number of states, got {count_tok.text!r}", count_tok)
                count = int(count_tok.text)
                p.take("]")
                p.take("{")
                names = [t.text for t in p.name_list("}")]
                p.take(";")
                if len(names) != count:
                    raise p.error(
                        f"{var.text!r} declares {count} states but lists {len(names)}", count_tok
                    )
                if len(set(names)) != len(names):
                    raise p.error(f"{var.text!r} lists a state twice", count_tok)
                if not 1 <= count <= _MAX_STATES:
                    raise p.error(
                        f"{var.text!r}: {count} states (at most {_MAX_STATES})", count_tok
                    )
                states[var.text], got_type = names, True
            p.take("}")
            if not got_type:
                raise p.error(f"variable {var.text!r} has no 'type discrete' line", var)
            declared[var.text] = var
        elif kw.text == "probability":
            p.take("(")
            child = p.name("a variable name")
            parents: list[_Token] = []
            nxt = p.take()
            if nxt.text == "|":
                parents = p.name_list(")")
            elif nxt.text != ")":
                raise p.error(f"expected '|' or ')', got {nxt.text!r}", nxt)
            if child.text in blocks:
                raise p.error(f"a second probability block for {child.text!r}", child)
            entries = []
            p.take("{")
            while (tok := p.peek()) is not None and tok.text != "}":
                if tok.text == "property":
                    p.skip_statement()
                elif tok.text in ("table", "default"):
                    p.take()
                    entries.append((tok.text, None, p.number_list()))
                elif tok.text == "(":
                    p.take("(")
                    config = p.name_list(")")
                    entries.append(("row", config, p.number_list()))
                else:
                    raise p.error(f"unexpected {tok.text!r} in a probability block", tok)
            p.take("}")
            blocks[child.text] = (child, parents, entries)
        else:
            raise p.error(f"expected 'network', 'variable' or 'probability', got {kw.text!r}", kw)
    return _assemble(p, name, states, declared, blocks, tolerance)


def _assemble(p: _Parser, name, states, declared, blocks, tolerance) -> ParsedBIF:
    parents_of: dict[str, list[str]] = {}
    cpts: dict[str, torch.Tensor] = {}
    for child_tok, parent_toks, entries in blocks.values():
        child = child_tok.text
        for tok in (child_tok, *parent_toks):
            if tok.text not in states:
                raise p.error(f"probability block uses the undeclared variable {tok.text!r}", tok)
        parents = [t.text for t in parent_toks]
        if len(set(parents)) != len(parents) or child in parents:
            raise p.error(f"probability block for {child!r} repeats a variable", child_tok)
        k = len(states[child])
        parent_cards = [len(states[q]) for q in parents]
        n_configs = math.prod(parent_cards)
        if n_configs * k > _MAX_TABLE:
            raise p.error(f"{child!r}: a table of {n_configs * k} entries is too large", child_tok)
        rows: list[list[float] | None] = [None] * n_configs
        # the token each row came from, so that a bad row is reported on its own line
        row_toks: list[_Token] = [child_tok] * n_configs
        for kind, config, (numbers, tok) in entries:
            if kind == "table":
                if len(numbers) != n_configs * k:
                    raise p.error(
                        f"{child!r}: table has {len(numbers)} values, expected "
                        f"{n_configs * k} ({k} states x {n_configs} parent configurations)",
                        tok,
                    )
                # child-major (pgmpy's reading): row s of the child, columns the configurations
                rows = [numbers[c::n_configs] for c in range(n_configs)]
                row_toks = [tok] * n_configs
            elif kind == "default":
                if len(numbers) != k:
                    raise p.error(
                        f"{child!r}: default row has {len(numbers)} values, expected {k}", tok
                    )
                row_toks = [tok if r is None else t for r, t in zip(rows, row_toks, strict=True)]
                rows = [numbers if r is None else r for r in rows]
            else:
                if len(config) != len(parents):
                    raise p.error(
                        f"{child!r}: row names {len(config)} parent states, expected "
                        f"{len(parents)}",
                        config[0],
                    )
                index = 0
                for q, st in zip(parents, config, strict=True):
                    if st.text not in states[q]:
                        raise p.error(
                            f"{child!r}: {st.text!r} is not a state of {q!r} (states: {states[q]})",
                            st,
                        )
                    index = index * len(states[q]) + states[q].index(st.text)
                if len(numbers) != k:
                    raise p.error(f"{child!r}: row has {len(numbers)} values, expected {k}", tok)
                rows[index], row_toks[index] = numbers, tok
        if any(r is None for r in rows):
            missing = rows.index(None)
            config = []
            for q, card in zip(reversed(parents), reversed(parent_cards), strict=True):
                config.append(states[q][missing % card])
                missing //= card
            raise p.error(
                f"{child!r}: no probabilities for the parent configuration "
                f"({', '.join(reversed(config))})",
                child_tok,
            )
        table = torch.tensor(rows, dtype=torch.float64).reshape(n_configs, k)
        if bool((table < 0).any()):
            bad = int((table < 0).any(1).nonzero()[0])
            raise p.error(
                f"{child!r}: negative probability {float(table[bad].min()):g}", row_toks[bad]
            )
        sums = table.sum(1)
        worst = int((sums - 1).abs().argmax())
        if abs(float(sums[worst]) - 1) > tolerance:
            raise p.error(
                f"{child!r}: a row sums to {float(sums[worst]):.6g}, not 1 (tolerance {tolerance})",
                row_toks[worst],
            )
        parents_of[child] = parents
        # Rows off by rounding are made exact; rows already summing to 1 keep their values,
        # so that writing and reading again gives the same numbers.
        off = (sums - 1).abs() > 1e-12
        table[off] = table[off] / sums[off, None]
        cpts[child] = table.reshape(*parent_cards, k)
    missing = [v for v in states if v not in cpts]
    if missing:
        raise p.error(f"no probability block for {missing}", declared[missing[0]])
    return ParsedBIF(name, states, parents_of, cpts)


def read_bif(path: str | Path, *, tolerance: float = 1e-3) -> ParsedBIF:
    """Read a BIF file (plain or gzip)."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
            raise BIFError(f"read_bif: {path}: not a readable gzip file ({err})") from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return parse_bif(text, str(path), tolerance=tolerance)


def _format(x: float) -> str:
    return repr(float(x))


def write_bif(parsed: ParsedBIF, path: str | Path | None = None) -> str:
    """BIF text for a network (conditional tables as one row per parent configuration);
    written to ``path`` (gzip if it ends in ``.gz``) when given. Round-trips exactly."""
    lines = [f"network {parsed.name} {{", "}"]
    for v, names in parsed.states.items():
        lines += [
            f"variable {v} {{",
            f"  type discrete [ {len(names)} ] {{ {', '.join(names)} }};",
            "}",
        ]
    for v in parsed.states:
        parents = parsed.parents[v]
        cpt = parsed.cpts[v]
        head = f"probability ( {v}{' | ' + ', '.join(parents) if parents else ''} ) {{"
        lines.append(head)
        if not parents:
            lines.append("  table " + ", ".join(_format(x) for x in cpt.tolist()) + ";")
        else:
            rows = cpt.reshape(-1, cpt.shape[-1])
            cards = [len(parsed.states[q]) for q in parents]
            for index, row in enumerate(rows.tolist()):
                config, rest = [], index
                for q, card in zip(reversed(parents), reversed(cards), strict=True):
                    config.append(parsed.states[q][rest % card])
                    rest //= card
                lines.append(
                    f"  ({', '.join(reversed(config))}) " + ", ".join(_format(x) for x in row) + ";"
                )
        lines.append("}")
    text = "\n".join(lines) + "\n"
    if path is not None:
        path = Path(path)
        data = text.encode("utf-8")
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return text
