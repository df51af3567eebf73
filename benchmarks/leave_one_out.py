"""Leave-one-dataset-out check of a default: is the setting chosen without a dataset good on it?

For each model, each fixed setting has an image AUROC on each suite dataset (rows of
``anomaly_suite.py --tune off --options ...``). Holding one dataset out, the setting with the best
mean image AUROC on the other datasets is the default that would have been chosen without it; the
check passes when that setting is within ``--tolerance`` (0.03) of the best setting for the
held-out dataset. Where no single setting passes, the default must be chosen from the training
data (``train --tune auto``): give the self-tuned suite rows with ``--auto`` to see how close the
tuner's own choice comes to the best fixed setting on every dataset.

    # reuse suite results (each made with --tune off and one setting)
    python benchmarks/leave_one_out.py \
        --setting "128 n5=benchmarks/results/anomaly-suite-before.json" \
        --setting "256 n3=benchmarks/results/lodo-256n3.json" \
        --auto benchmarks/results/anomaly-suite.json
    # or run a setting here: LABEL=JSON options (one anomaly_suite.py run with --tune off)
    python benchmarks/leave_one_out.py --models patchcore \
        --setting '256 n5={"image_size": 256, "max_side": 640, "neighbourhood": 5}'
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

SUITE = Path(__file__).with_name("anomaly_suite.py")


def load_rows(value: str, models: list[str], out_dir: Path, label: str) -> list[dict]:
    """Suite rows from a results file, or from a fresh ``--tune off`` suite run of the options."""
    path = Path(value)
    if value.endswith(".json") and path.is_file():
        return json.loads(path.read_text())
    json.loads(value)  # a clear error now if the options are not JSON
    out = out_dir / f"lodo-{''.join(c if c.isalnum() else '-' for c in label)}.json"
    command = [sys.executable, str(SUITE), "--models", *models, "--tune", "off",
               "--options", value, "--json", str(out)]
    print(f"# running: {' '.join(command)}", flush=True)
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def auroc_table(settings: dict[str, list[dict]], model: str) -> dict[str, dict[str, float]]:
    """setting -> dataset -> image AUROC, for ``model``; datasets every setting has."""
    table = {label: {row["dataset"]: row["image_auroc"] for row in rows
                     if row.get("model") == model and row.get("image_auroc") is not None}
             for label, rows in settings.items()}
    common = set.intersection(*(set(values) for values in table.values())) if table else set()
    return {label: {d: v for d, v in values.items() if d in common}
            for label, values in table.items()}


def leave_one_out(table: dict[str, dict[str, float]], tolerance: float) -> list[dict]:
    """Per held-out dataset: the setting chosen on the others, its AUROC there, the best."""
    datasets = sorted(next(iter(table.values()))) if table else []
    rows = []
    for held_out in datasets:
        others = [d for d in datasets if d != held_out]
        chosen = max(table, key=lambda s: sum(table[s][d] for d in others) / len(others))
        best = max(table, key=lambda s: table[s][held_out])
        gap = table[best][held_out] - table[chosen][held_out]
        rows.append({"held_out": held_out, "chosen_without_it": chosen,
                     "auroc_chosen": table[chosen][held_out], "best_setting": best,
                     "auroc_best": table[best][held_out], "gap": gap, "passes": gap <= tolerance})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--setting", action="append", required=True, metavar="LABEL=JSON|FILE")
    parser.add_argument("--auto", type=Path, help="self-tuned suite rows (train --tune auto)")
    parser.add_argument("--models", nargs="+", default=["patchcore", "padim"])
    parser.add_argument("--tolerance", type=float, default=0.03)
    parser.add_argument("--out-dir", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    settings = {}
    for item in args.setting:
        label, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--setting takes LABEL=JSON or LABEL=FILE, got {item!r}")
        settings[label] = load_rows(value, args.models, args.out_dir, label)
    auto = json.loads(args.auto.read_text()) if args.auto else []
    print(f"# {' '.join([Path(sys.argv[0]).name] + (argv or sys.argv[1:]))}")
    for model in args.models:
        table = auroc_table(settings, model)
        if not table or not next(iter(table.values())):
            print(f"\n## {model}: no dataset common to every setting")
            continue
        datasets = sorted(next(iter(table.values())))
        tuned = {row["dataset"]: row for row in auto if row.get("model") == model}
        print(f"\n## {model}: image AUROC per fixed setting")
        print("| setting | " + " | ".join(datasets) + " | mean |")
        print("|---|" + "---|" * (len(datasets) + 1))
        for label, values in table.items():
            mean = sum(values.values()) / len(values)
            print(f"| {label} | " + " | ".join(f"{values[d]:.3f}" for d in datasets)
                  + f" | {mean:.3f} |")
        if tuned and all(d in tuned for d in datasets):
            values = [tuned[d]["image_auroc"] for d in datasets]
            print("| self-tuned (auto) | " + " | ".join(
                f"{v:.3f} ({tuned[d].get('chosen')})" for d, v in zip(datasets, values))
                + f" | {sum(values) / len(values):.3f} |")
        print(f"\nleave one dataset out (passes: within {args.tolerance} of the best setting)")
        print("| held out | chosen without it | AUROC | best setting | AUROC | gap | passes |")
        print("|---|---|---|---|---|---|---|")
        for row in leave_one_out(table, args.tolerance):
            print(f"| {row['held_out']} | {row['chosen_without_it']} | {row['auroc_chosen']:.3f} "
                  f"| {row['best_setting']} | {row['auroc_best']:.3f} | {row['gap']:.3f} "
                  f"| {'yes' if row['passes'] else 'NO'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
