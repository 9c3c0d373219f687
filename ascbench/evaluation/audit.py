"""Are claimed complexity figures mutually possible?

A paper that reports a parameter count, a model size in kB and a storage precision has made
three claims that constrain each other: ``params`` values of ``bits`` bits take at least
``params x bits / 8`` bytes, so a model size below that is impossible whatever the file format
(the size may be *larger* -- graph, scales, headers -- never smaller). With the DCASE kB of
1,000 B::

    size_kB x 1000 x 8 / bits  >=  params        (the most parameters that fit)
    size_kB x 1000 x 8 / params                  (the bits per parameter the claim implies)

E.g. 0.9 M parameters cannot be stored in 115.6 kB at 8 bits: they need 900 kB, and 115.6 kB
hold at most 115,600 int8 parameters (1.03 bits per parameter).

Each claim is also checked against the DCASE 2024 Task 1 limits: at most 128 kB of parameter
memory (the claimed size, and the memory the parameters need at the claimed precision) and at
most 30 M MACs per 1-second clip. Comparisons are exact (decimal fractions, not floats), so a
claim exactly at a limit passes, as DCASE's ``<=`` does.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ascbench.evaluation.complexity import DCASE_MAX_MACS, DCASE_MAX_PARAM_BYTES

DCASE_MAX_KB = Fraction(DCASE_MAX_PARAM_BYTES, 1000)
DEFAULT_BITS = 8
"""The precision assumed when a claim does not state one: int8, as DCASE submissions store."""
PAPER_TABLES = Path(__file__).resolve().parents[1] / "resources" / "paper_tables.csv"
"""Tables 1-2 of the seed paper, transcribed (see the file's ``note`` column)."""

COLUMNS = ("table", "system", "params", "macs", "size_kb", "bits", "bits_basis", "accuracy", "note")
"""Columns :func:`load_claims` understands; any other column is kept in :attr:`Claim.extra`."""


class ClaimFileError(ValueError):
    """A claims file cannot be read; the message names the file and the line."""


@dataclass(frozen=True)
class Claim:
    """One system's claimed complexity figures (any of them may be missing)."""

    system: str
    params: int | None = None
    size_kb: float | None = None
    """Claimed model / parameter memory size, kB of 1,000 B."""
    bits: int = DEFAULT_BITS
    bits_basis: str = "given"
    """Where ``bits`` comes from: stated by the source, implied by it, or assumed (then say so)."""
    macs: int | None = None
    """Claimed MACs for one 1-second clip."""
    table: str = ""
    accuracy: float | None = None
    note: str = ""
    source: str = ""
    """``file:line`` the claim was read from, for messages."""
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 64:
            raise ValueError(f"bits must be between 1 and 64, got {self.bits}")
        for name in ("params", "size_kb", "macs"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):  # nan passes "< 0"
                raise ValueError(f"{name} must be a finite, non-negative number, got {value}")

    @property
    def bits_assumed(self) -> bool:
        return self.bits_basis.lower().startswith("assumed")


@dataclass(frozen=True)
class Verdict:
    """The audit of one claim: what follows from it, and what is wrong with it."""

    claim: Claim
    needed_kb: float | None
    """Memory the claimed parameters need at the claimed precision (params x bits / 8000)."""
    max_params: int | None
    """The most parameters of ``bits`` bits that fit in the claimed size."""
    implied_bits: float | None
    """Bits per parameter the claimed size and parameter count imply."""
    fits: bool | None
    """Claimed size >= needed memory; None when params or size is missing."""
    size_within_limit: bool | None
    """Claimed size and needed memory both <= 128 kB; None when neither is known."""
    macs_within_limit: bool | None
    problems: tuple[str, ...]
    arithmetic: tuple[str, ...]

    @property
    def impossible(self) -> bool:
        return self.fits is False

    @property
    def over_limit(self) -> bool:
        return self.size_within_limit is False or self.macs_within_limit is False

    @property
    def status(self) -> str:
        """``consistent``, ``impossible``, ``over DCASE limit`` or both of the last two."""
        parts = [s for s, bad in (("impossible", self.impossible), ("over DCASE limit", self.over_limit)) if bad]
        return ", ".join(parts) or "consistent"

    @property
    def text(self) -> str:
        """The status with its reasons, e.g. ``impossible: needs 900.0 kB at 8 bits, claims 115.6 kB``."""
        return "consistent" if not self.problems else "; ".join(self.problems)


def _exact(x: float) -> Fraction:
    """The decimal the user wrote (115.6 is 1156/10, not the nearest binary float)."""
    return Fraction(repr(x)) if isinstance(x, float) else Fraction(x)


def _kb(x: Fraction | float) -> str:
    """kB with one decimal, more where needed to tell it from a neighbour (115.601 is not 115.6)."""
    text = f"{float(x):,.3f}".rstrip("0")
    return f"{text}0 kB" if text.endswith(".") else f"{text} kB"


def audit_claim(claim: Claim) -> Verdict:
    """Check one claim for internal consistency and against the DCASE 2024 limits."""
    bits = claim.bits
    problems: list[str] = []
    arithmetic: list[str] = []
    needed = max_params = implied = fits = None
    if claim.params is not None:
        needed = Fraction(claim.params * bits, 8000)
        arithmetic.append(f"{claim.params:,} params x {bits} bits / 8 / 1000 = {_kb(needed)} needed")
    if claim.size_kb is not None:
        size = _exact(claim.size_kb)
        max_params = int(size * 8000 / bits)
        arithmetic.append(f"{claim.size_kb:g} kB x 1000 x 8 / {bits} bits = {max_params:,} params at most")
        if claim.params is not None:
            fits = needed <= size
            if claim.params:
                implied = size * 8000 / claim.params
                arithmetic.append(f"{claim.size_kb:g} kB x 8000 / {claim.params:,} params = {float(implied):.2f} bits per parameter")
            if not fits:
                problems.append(f"impossible: needs {_kb(needed)} at {bits} bits, claims {claim.size_kb:g} kB")
    size_ok: bool | None = None
    sizes = {"claimed size": _exact(claim.size_kb) if claim.size_kb is not None else None, f"{bits}-bit params": needed}
    memory = {label: value for label, value in sizes.items() if value is not None}
    if memory:
        size_ok = True
        for label, value in memory.items():
            if value > DCASE_MAX_KB:
                size_ok = False
                problems.append(f"over DCASE limit: {label} {_kb(value)} > {float(DCASE_MAX_KB):g} kB")
    macs_ok: bool | None = None
    if claim.macs is not None:
        macs_ok = claim.macs <= DCASE_MAX_MACS
        arithmetic.append(f"{claim.macs:,} MACs {'<=' if macs_ok else '>'} {DCASE_MAX_MACS:,} (DCASE limit)")
        if not macs_ok:
            problems.append(f"over DCASE limit: {claim.macs / 1e6:,.1f} M MACs > {DCASE_MAX_MACS / 1e6:g} M")
    return Verdict(
        claim=claim,
        needed_kb=float(needed) if needed is not None else None,
        max_params=max_params,
        implied_bits=float(implied) if implied is not None else None,
        fits=fits,
        size_within_limit=size_ok,
        macs_within_limit=macs_ok,
        problems=tuple(problems),
        arithmetic=tuple(arithmetic),
    )


# --- claims files -----------------------------------------------------------------------------

_SUFFIX = {"k": 1e3, "m": 1e6, "g": 1e9}
_NUMBER = re.compile(r"^\s*([-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:e[-+]?\d+)?)\s*([kmg]?)\s*$", re.IGNORECASE)


def parse_count(text: str) -> int:
    """``61148``, ``61_148``, ``1.2e6``, ``1.2M``, ``29.4k`` -> an integer count.

    Raises ValueError for anything else (a count with a fraction left, e.g. ``0.5``, included).
    """
    match = _NUMBER.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a count (expected e.g. 61148, 1.2e6 or 1.2M)")
    value = Fraction(match.group(1).replace("_", "")) * Fraction(_SUFFIX.get(match.group(2).lower(), 1))
    if value.denominator != 1:
        raise ValueError(f"{text!r} is not a whole number")
    return int(value)


def load_claims(path: Path | str) -> list[Claim]:
    """Read claims from a CSV file with a header row (see :data:`COLUMNS`; ``system`` is required).

    Blank lines and lines starting with ``#`` are skipped. An empty ``bits`` means the source
    does not say: :data:`DEFAULT_BITS` is used and ``bits_basis`` records the assumption. Errors
    raise :class:`ClaimFileError` naming the file, the line and the column.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ClaimFileError(f"{path}: cannot read claims file: {exc.strerror or exc}") from exc
    rows = [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip() and not line.lstrip().startswith("#")]
    if not rows:
        raise ClaimFileError(f"{path}: no header row (expected columns {', '.join(COLUMNS)})")
    header_line, header_text = rows[0]
    header = [h.strip().lower() for h in next(csv.reader([header_text]))]
    if "system" not in header:
        raise ClaimFileError(f"{path}:{header_line}: header has no 'system' column (got {', '.join(header)}; expected {', '.join(COLUMNS)})")
    if not {"params", "size_kb", "macs"} & set(header):
        raise ClaimFileError(f"{path}:{header_line}: header needs at least one of params, size_kb, macs")
    claims = []
    for lineno, line in rows[1:]:
        where = f"{path}:{lineno}"
        fields = next(csv.reader([line]))
        if len(fields) != len(header):
            raise ClaimFileError(f"{where}: {len(fields)} fields, the header has {len(header)} ({', '.join(header)})")
        row = {k: v.strip() for k, v in zip(header, fields)}
        claims.append(_claim_from_row(row, where))
    return claims


def _claim_from_row(row: dict[str, str], where: str) -> Claim:
    def value(column: str, parse):  # noqa: ANN001 -- int or float parser
        text = row.get(column, "")
        if not text:
            return None
        try:
            return parse(text)
        except ValueError as exc:
            raise ClaimFileError(f"{where}: column {column!r}: {exc}") from None

    def real(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number")
        return value

    def whole(text: str) -> int:
        bits = parse_count(text)
        if not 1 <= bits <= 64:
            raise ValueError(f"{bits} is not a bit width (1-64)")
        return bits

    if not row.get("system"):
        raise ClaimFileError(f"{where}: column 'system' is empty")
    params, size_kb, macs = value("params", parse_count), value("size_kb", real), value("macs", parse_count)
    if params is None and size_kb is None and macs is None:
        raise ClaimFileError(f"{where}: no figure to audit (params, size_kb and macs are all empty)")
    for column, number in (("params", params), ("size_kb", size_kb), ("macs", macs)):
        if number is not None and number < 0:
            raise ClaimFileError(f"{where}: column {column!r}: {number} is negative")
    bits = value("bits", whole)
    basis = row.get("bits_basis", "") or ("stated" if bits is not None else f"assumed: int{DEFAULT_BITS} (DCASE), not stated")
    return Claim(
        system=row["system"],
        params=params,
        size_kb=size_kb,
        bits=bits if bits is not None else DEFAULT_BITS,
        bits_basis=basis,
        macs=macs,
        table=row.get("table", ""),
        accuracy=value("accuracy", real),
        note=row.get("note", ""),
        source=where,
        extra={k: v for k, v in row.items() if k not in COLUMNS},
    )


def audit_file(path: Path | str) -> list[Verdict]:
    """:func:`load_claims` then :func:`audit_claim` for each row."""
    return [audit_claim(c) for c in load_claims(path)]
