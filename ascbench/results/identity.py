"""Comparing run identities (what :mod:`ascbench.runner.identity` computes for a run and every
record carries): whether a record may stand for today's run, and how to name rows of one system
made by different code or data. Pure functions of the recorded digests, so the leaderboard can
use them without importing the runner or torch."""

from __future__ import annotations

import hashlib

from ascbench.results.provenance import canonical_json

COMPARED: tuple[tuple[str, str], ...] = (
    ("model", "the model's architecture or parameter shapes"),
    ("source", "the plugin's source files"),
    ("config", "the recipe options"),
    ("audio", "the data set's audio content"),
    ("teacher", "the teacher (its logits file, or its member runs' records)"),
    ("general", "the general model that the device models were fine-tuned from (its run was redone)"),
    ("device_recipe", "the device fine-tuning recipe"),
)
"""Identity fields that must match for a record to be reused, and how a change is said."""

GROUPED: tuple[str, ...] = ("model", "source", "config", "audio", "teacher_source", "device_recipe")
"""Identity fields that must match for records of several seeds to be averaged in one board row.

Not ``teacher``: a ``runs:`` teacher is the member runs *of the student's seed*, so its content
differs from seed to seed as the seed itself does. ``teacher_source`` is what does not: the
logits file's content, or the members' own identities. Nor ``general``: the general model a
seed's device models start from is that seed's own run."""


def identity_changes(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """What differs between a record's identity and the current one, as phrases; empty when the
    record may be reused."""
    if not recorded:
        return ["the record predates run identities, so what made it cannot be checked"]
    changes = []
    for field, said in COMPARED:
        if recorded.get(field) != current.get(field):
            if field == "model" and recorded.get("params") != current.get("params"):
                said += f" (parameters {recorded.get('params')} → {current.get('params')})"
            changes.append(said)
    return changes


def identity_label(identity: dict[str, str], fields: tuple[str, ...] = tuple(k for k, _ in COMPARED)) -> str:
    """A short name for one identity over ``fields`` (default: everything a reused record must
    match, e.g. a training work directory); :data:`GROUPED` tells apart board rows of one system
    made by different code or data."""
    if not identity:
        return "pre-identity"
    # only the fields a record has: a field added later leaves the labels of older records as they were
    return hashlib.sha256(canonical_json({k: identity[k] for k in fields if k in identity}).encode()).hexdigest()[:8]
