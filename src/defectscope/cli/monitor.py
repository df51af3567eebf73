"""``defectscope retrain|review|monitor``: the feedback loop's verbs. Parsing and printing only.

    defectscope review queue  [--db sqlite:///runs/line/results.db]
    defectscope review export [--db URL] [--archive DIR] --out datasets \
        --base data/manifest.json
    defectscope retrain --from-version datasets/<id>/manifest.json --current models/current \
        --out candidates/c1 --margin 0.01
    defectscope monitor [--db sqlite:///runs/line/results.db] --window-s 3600

``retrain`` exits 0 when the candidate passed the gate, 1 when it was refused (both are logged
in the audit trail), 2 on an error.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from defectscope.store.locations import DEFAULT_DB_URL, absolute_db_url, default_archive_for


def register(subparsers) -> None:
    _add_retrain(subparsers)
    _add_review(subparsers)
    _add_monitor(subparsers)


def _add_retrain(subparsers) -> None:
    parser = subparsers.add_parser(
        "retrain", help="train a candidate on a dataset version; promote it only if it passes "
        "the regression gate",
        description="Train a candidate with the current model's name and config on a new dataset "
        "version, score both on the shared test split plus the new reviewed parts, and promote "
        "the candidate (swap the current link atomically) only if recall does not fall and the "
        "false-reject rate does not rise beyond --margin. Every decision goes to the audit log.")
    parser.add_argument("--from-version", required=True, metavar="MANIFEST.json",
                        help="the new dataset version (from `defectscope review export`)")
    parser.add_argument("--current", required=True, metavar="MODEL_DIR",
                        help="the model in use (a folder or the `current` link)")
    parser.add_argument("--out", required=True, metavar="CANDIDATE_DIR",
                        help="where to write the candidate")
    parser.add_argument("--margin", type=float, default=0.01,
                        help="allowed rise of the false-reject rate (default 0.01)")
    parser.add_argument("--recall-margin", type=float, default=0.0,
                        help="allowed fall of recall (default 0: none)")
    parser.add_argument("--audit-log", metavar="FILE",
                        help="JSON-lines audit log (default: audit.jsonl beside --current)")
    parser.add_argument("--claim-type", action="append", default=[], metavar="TYPE",
                        help="a defect type the version must contain (repeatable)")
    parser.add_argument("--no-promote", action="store_true",
                        help="decide and log, but leave the current model in place")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=run_retrain)


def _add_review(subparsers) -> None:
    parser = subparsers.add_parser("review", help="the operator review queue and its export")
    verbs = parser.add_subparsers(dest="review_command", metavar="VERB", required=True)
    queue = verbs.add_parser("queue", help="list parts waiting for review")
    _db(queue)
    queue.add_argument("--ok-rate", type=float, default=0.02, help="share of OK parts sampled")
    queue.add_argument("--ng-rate", type=float, default=0.1, help="share of NG parts sampled")
    queue.add_argument("--seed", type=int, default=0)
    queue.add_argument("--limit", type=int, default=50)
    queue.set_defaults(handler=run_queue)
    export = verbs.add_parser("export", help="write confirmed labels as a new dataset version",
                              description="Add every confirmed label not yet exported to a new "
                              "dataset version under --out (the old version is never touched).")
    _db(export)
    export.add_argument("--archive", metavar="DIR", help="the image archive (default: images/ "
                        "beside a SQLite --db, as run and serve keep it)")
    export.add_argument("--out", required=True, metavar="DATASETS_DIR",
                        help="datasets folder (versions.jsonl, images/, masks/, <id>/)")
    export.add_argument("--base", metavar="MANIFEST.json",
                        help="version to build on when --out has none yet")
    export.add_argument("--train-fraction-good", type=float, default=0.5,
                        help="share of reviewed good parts put in the train split (default 0.5)")
    export.add_argument("--seed", type=int, default=0)
    export.set_defaults(handler=run_export)


def _add_monitor(subparsers) -> None:
    parser = subparsers.add_parser("monitor", help="SPC alerts, drift and production figures "
                                   "from the results log")
    _db(parser)
    parser.add_argument("--window-s", type=float, default=3600.0,
                        help="p-chart window in seconds (default 3600)")
    parser.add_argument("--by-lot", action="store_true", help="one p-chart point per source/lot")
    parser.add_argument("--reference-size", type=int, default=200,
                        help="first N results used as the drift reference (default 200)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=run_monitor)


def _db(parser) -> None:
    parser.add_argument("--db", default=DEFAULT_DB_URL, type=absolute_db_url, metavar="URL",
                        help=f"results database URL (default {DEFAULT_DB_URL}, where run and "
                        "serve log)")


def run_retrain(args: argparse.Namespace) -> int:
    import sys

    from defectscope.retrain import GateConfig, RetrainConfig, retrain

    config = RetrainConfig(GateConfig(args.margin, args.recall_margin), not args.no_promote,
                           Path(args.audit_log) if args.audit_log else None,
                           tuple(args.claim_type), args.seed)
    outcome = retrain(args.from_version, args.current, args.out, config,
                      log=lambda message: print(message, file=sys.stderr))
    decision = outcome.decision
    for label, figures in (("current", decision.current), ("candidate", decision.candidate)):
        print(f"{label:9s}  recall {figures.recall:.4f}  false-reject rate "
              f"{figures.false_reject_rate:.4f}  ({figures.n_defect} defective, "
              f"{figures.n_good} good)")
    print("\n".join(decision.reasons))
    print(f"decision: {outcome.audit['decision']}"
          + (f" -> {outcome.release}" if outcome.release else ""))
    return 0 if decision.promote else 1


def run_queue(args: argparse.Namespace) -> int:
    from defectscope.store import QueueConfig, ResultStore, ReviewStore

    reviews = ReviewStore(ResultStore(args.db))
    for row in reviews.queue(QueueConfig(args.ok_rate, args.ng_rate, args.seed), args.limit):
        r = row.result
        print(f"{row.id}\t{r.part_id}\t{r.verdict.value}\t{r.score}")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from defectscope.data.images.manifest import Manifest
    from defectscope.review import ExportConfig, export_version, latest_manifest
    from defectscope.store import ImageArchive, ResultStore, ReviewStore

    base = Manifest.load(args.base) if args.base else None
    result = export_version(latest_manifest(args.out, base), ReviewStore(ResultStore(args.db)),
                            ImageArchive(args.archive or default_archive_for(args.db)), args.out,
                            ExportConfig(args.train_fraction_good, args.seed))
    for line in result.skipped:
        print(f"skipped: {line}")
    print(f"version {result.manifest.version_id} (parent {result.manifest.parent_version}): "
          f"{len(result.added)} reviewed parts added, {len(result.manifest.samples)} samples; "
          f"{result.path}")
    return 0


def run_monitor(args: argparse.Namespace) -> int:
    from defectscope.monitor import (drift_report, ewma_chart, ng_windows, p_chart,
                                     production_stats)
    from defectscope.store import ResultStore

    rows = [r.result for r in ResultStore(args.db).query(limit=100_000)][::-1]
    windows = ng_windows(rows, args.window_s, by_lot=args.by_lot)
    report: dict = {"stats": production_stats(rows), "alerts": []}
    if windows:
        chart = p_chart([w.ng for w in windows], [w.n for w in windows])
        report["alerts"] += list(chart.alerts)
        means = [w.mean_score for w in windows if w.mean_score is not None]
        if len(means) >= 2:
            report["alerts"] += list(ewma_chart(means).alerts)
    scores = [r.score for r in rows if r.score is not None]
    report["drift"] = drift_report(scores[:args.reference_size],
                                   scores[args.reference_size:]).to_dict()
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    stats = report["stats"]
    print(f"{stats['n']} parts, NG rate {stats['ng_rate']}, latency ms {stats['latency_ms']}")
    print(f"drift: {report['drift']['status']} {'; '.join(report['drift']['reasons'])}")
    print("\n".join(report["alerts"]) or "no SPC alerts")
    return 0
