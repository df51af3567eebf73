"""Return on investment from the results log and costs the user sets.

Two baselines, reported apart so nothing is counted twice. ``savings`` is against shipping
uninspected: NG parts that are really defective are escapes avoided; NG parts that are good cost
a false reject; each UNSURE part costs one manual inspection. ``manual_saved`` is against 100 %
manual inspection: every part decided without a person saves its manual cost. ``escapes`` are
the defects the model still passes (OK parts x reviewed escape rate). Precision and escape rate
come from reviewed parts (``estimates.py``); without reviews precision is taken as 1 and escapes
as 0, and ``assumptions`` says so.

>>> roi_summary(1000, ng=50, unsure=10, costs=Costs(5, 200, 0.5), precision=0.8).escapes_avoided
40.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from defectscope.errors import ConfigError


@dataclass(frozen=True)
class Costs:
    """Money per event, in the user's currency."""

    false_reject: float = 5.0       # a good part scrapped or reworked
    escape: float = 200.0           # a defective part reaching the customer
    manual_inspection: float = 0.5  # a person looking at one part

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value >= 0:
                raise ConfigError(f"cost {name} must be a number >= 0, not {value!r}")


@dataclass(frozen=True)
class Roi:
    parts: int
    ng: int
    unsure: int
    ng_rate: float | None
    escapes_avoided: float
    false_rejects: float
    escapes: float
    manual_saved: float
    savings: float
    assumptions: tuple[str, ...]

    def to_dict(self) -> dict:
        return {**asdict(self), "assumptions": list(self.assumptions)}


def roi_summary(parts: int, ng: int, unsure: int, costs: Costs = Costs(),
                precision: float | None = None, escape_rate: float | None = None) -> Roi:
    """``savings = escapes_avoided x escape - false_rejects x false_reject - unsure x manual``."""
    if parts < 0 or ng < 0 or unsure < 0 or ng + unsure > parts:
        raise ConfigError(f"need 0 <= ng + unsure <= parts (got {parts}, {ng}, {unsure})")
    notes = []
    if precision is None:
        precision = 1.0
        notes.append("no reviewed NG parts: every NG taken as a real defect")
    if escape_rate is None:
        escape_rate = 0.0
        notes.append("no reviewed OK parts: no escapes assumed")
    ok = parts - ng - unsure
    escapes_avoided = ng * precision
    false_rejects = ng * (1 - precision)
    escapes = ok * escape_rate
    manual_saved = (parts - unsure) * costs.manual_inspection
    savings = (escapes_avoided * costs.escape - false_rejects * costs.false_reject
               - unsure * costs.manual_inspection)
    return Roi(parts, ng, unsure, ng / parts if parts else None, round(escapes_avoided, 6),
               round(false_rejects, 6), round(escapes, 6), round(manual_saved, 6),
               round(savings, 6), tuple(notes))
