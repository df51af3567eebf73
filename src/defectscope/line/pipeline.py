"""The line: source -> decide -> archive -> commit -> acknowledge -> actions, one part at a time.

Order matters. The result is committed to the results log before the ``ack`` callback (the PLC
handshake) and before any action (reject, publish, alert) sees it, so nothing acknowledged or
published can be missing from the log after a crash. Actions are isolated from each other and
from the part's result. The line depends on models only through the ``Inspector`` protocol,
so it runs the same on the torch path, the ONNX runtime, or a test fake.

>>> pipeline = LinePipeline(parse_source("folder:incoming"), BundleInspector("model"),
...                         ResultStore("sqlite:///results.db"), actions=[Publish(print)])  # doctest: +SKIP
>>> counters = pipeline.run()                   # until the source ends or pipeline.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from defectscope.line.actions import Action, Alert, Archive, ArchivedPaths, PartEvent
from defectscope.line.decision import Decision, FailSafePolicy, evaluate
from defectscope.line.sources import Frame, Source
from defectscope.store.results import ResultStore
from defectscope.values import InspectionResult, PartResult

log = logging.getLogger(__name__)


@runtime_checkable
class Inspector(Protocol):
    """What the line needs from a model: versions, its threshold, and one image -> result."""

    model_version: str
    dataset_version: str | None
    threshold: float

    def inspect(self, image: np.ndarray) -> InspectionResult: ...


class BundleInspector:
    """An ``Inspector`` over a model bundle folder (the torch path: imports torch on load).

    >>> inspector = BundleInspector("models/tiles")        # doctest: +SKIP
    >>> inspector.inspect(image).verdict                    # doctest: +SKIP
    """

    def __init__(self, model_dir: str | os.PathLike[str], bundle=None) -> None:
        if bundle is None:
            from defectscope.bundle import load_bundle  # lazy: loading a model imports torch

            bundle = load_bundle(model_dir)
        self.bundle = bundle
        self.model_dir = Path(model_dir)
        self.model_version: str = bundle.model_version
        self.dataset_version: str | None = bundle.dataset_version
        self.threshold: float = float(bundle.model.threshold)

    @classmethod
    def from_bundle(cls, bundle) -> "BundleInspector":
        return cls(bundle.path, bundle=bundle)

    def inspect(self, image: np.ndarray) -> InspectionResult:
        return self.bundle.model.predict(image)


@dataclass
class LineCounters:
    """What the line did so far; read it while it runs (plain ints, updated by one thread)."""

    parts: int = 0
    verdicts: Counter = field(default_factory=Counter)
    fail_safe: Counter = field(default_factory=Counter)  # per fail-safe rule that fired
    action_errors: Counter = field(default_factory=Counter)  # per action name
    ack_errors: int = 0
    busy_s: float = 0.0  # time spent on parts (inspect, archive, commit, act), not waiting


class LinePipeline:
    """Runs a source through an inspector into the results log and the actions.

    ``ack(part_id, record_id)`` is called after the commit and before the actions; an ``alert``
    (if given) is raised for every fail-safe part and every failing action. A results-log write
    failure stops the line (``StoreError``): a result that cannot be kept must not be
    acknowledged, and the PLC's own timeout then rejects the part.
    """

    def __init__(self, source: Source, inspector: Inspector, store: ResultStore, *,
                 actions: Sequence[Action] = (), archive: Archive | None = None,
                 alert: Alert | None = None,
                 ack: Callable[[str, int], None] | None = None, line: str = "line1",
                 cycle_budget_ms: float | None = None,
                 policy: FailSafePolicy = FailSafePolicy()) -> None:
        self.source, self.inspector, self.store = source, inspector, store
        self.actions, self.archive, self.alert, self.ack = list(actions), archive, alert, ack
        self.line, self.cycle_budget_ms, self.policy = line, cycle_budget_ms, policy
        self.counters = LineCounters()
        self.stop_event = threading.Event()

    def process(self, frame: Frame) -> tuple[int, PartResult]:
        """Inspect, archive, commit, acknowledge and act on one frame; returns (row id, result)."""
        started = time.perf_counter()
        try:
            return self._process(frame)
        finally:
            self.counters.busy_s += time.perf_counter() - started

    def _process(self, frame: Frame) -> tuple[int, PartResult]:
        decision = evaluate(frame, self.inspector, cycle_budget_ms=self.cycle_budget_ms,
                            policy=self.policy, line=self.line)
        paths = self._isolated("archive", self._archive, decision) or ArchivedPaths()
        record_id = self.store.add(decision.part, paths.image_path, paths.heatmap_path)
        part = decision.part
        self.counters.parts += 1
        self.counters.verdicts[part.verdict.value] += 1
        if decision.failure is not None:
            self.counters.fail_safe[decision.failure.value] += 1
        if self.ack is not None:
            try:
                self.ack(part.part_id, record_id)
            except Exception as error:
                self.counters.ack_errors += 1
                log.exception("acknowledging part %s failed", part.part_id)
                self._raise_alert(f"ack failed for part {part.part_id}: {error}", kind="ack")
        event = PartEvent(record_id, decision)
        if self.alert is not None:
            self._isolated(self.alert.name, self.alert, event)
        for action in self.actions:
            self._isolated(action.name, action, event)
        return record_id, part

    def run(self, max_parts: int | None = None) -> LineCounters:
        """Process frames until the source ends, ``stop()`` or ``max_parts``; then close."""
        try:
            for frame in self.source:
                if self.stop_event.is_set():
                    break
                self.process(frame)
                if max_parts is not None and self.counters.parts >= max_parts:
                    break
        finally:
            self.close()
        return self.counters

    def stop(self) -> None:
        """Finish the current part, then stop (safe to call from another thread or a signal)."""
        self.stop_event.set()
        self.source.stop()

    def close(self) -> None:
        """Release the source and let actions flush (alert webhooks, publishers)."""
        self.source.close()
        for action in [*self.actions, self.alert]:
            close = getattr(action, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("closing action %s failed", getattr(action, "name", action))

    # -- helpers -------------------------------------------------------------------------------
    def _archive(self, decision: Decision) -> ArchivedPaths | None:
        return None if self.archive is None else self.archive.save(decision)

    def _isolated(self, name: str, call: Callable, argument):
        """Run one action; a failure is logged, counted and alerted, never raised."""
        try:
            return call(argument)
        except Exception as error:
            self.counters.action_errors[name] += 1
            log.exception("action %s failed", name)
            self._raise_alert(f"action {name} failed: {type(error).__name__}: {error}",
                              kind="action_error", action=name)
            return None

    def _raise_alert(self, message: str, **details) -> None:
        if self.alert is not None:
            self.alert.raise_alert(message, **details)
