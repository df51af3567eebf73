"""Batch re-inspection on a real local Ray instance: parity with the runtime, idempotent rows,
a killed worker's chunk retried, two models compared, clear errors."""

from __future__ import annotations

import pytest

from defectscope.distributed import BatchConfig, ClusterConfig, run_batch
from defectscope.distributed.batch import collect_paths
from defectscope.distributed.worker import load_runtime, score_paths
from defectscope.errors import BundleError, ConfigError, DataError
from defectscope.runtime.engine import DEFAULT_TOLERANCE

from tests.processes import kill_a_busy_worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
CLUSTER = ClusterConfig(workers=2, threads=1)


def test_rows_match_the_plain_runtime_and_parquet_has_each_image_once(exported_patchcore,
                                                                      archive, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "results.parquet"
    summary = run_batch(BatchConfig(models=(str(exported_patchcore),), inputs=(str(archive),),
                                    cluster=CLUSTER, out=str(out), chunk_size=8,
                                    progress=False))
    paths = collect_paths([str(archive)])
    assert summary.images == len(paths) == 48 and summary.failures == 0
    model = load_runtime(exported_patchcore)
    plain = {row["path"]: row for row in score_paths([("patchcore", model)], paths)}
    limit = DEFAULT_TOLERANCE * model.threshold
    for row in summary.rows:
        assert row["verdict"] == plain[row["path"]]["verdict"]
        assert abs(row["score"] - plain[row["path"]]["score"]) <= limit
        assert {"path", "verdict", "score", "threshold", "model_version", "defect_type",
                "detections", "timings_ms", "reason", "error", "part_id"} <= set(row)
    table = pq.read_table(out).to_pylist()
    assert sorted(r["path"] for r in table) == sorted(paths)
    assert len({r["part_id"] for r in table}) == len(paths)


def test_rerun_into_the_results_log_adds_no_row(exported_patchcore, archive, tmp_path):
    from defectscope.store.results import ResultStore

    url = f"sqlite:///{tmp_path / 'results.db'}"
    config = BatchConfig(models=(str(exported_patchcore),), inputs=(str(archive),),
                         cluster=CLUSTER, db=url, progress=False)
    first = run_batch(config)
    second = run_batch(config)
    assert (first.written_to_db, first.already_in_db) == (48, 0)
    assert (second.written_to_db, second.already_in_db) == (0, 48)
    store = ResultStore(url)
    assert store.count() == 48
    store.close()


def test_a_worker_killed_mid_run_loses_nothing_and_duplicates_nothing(exported_patchcore,
                                                                      archive):
    killed: list[int] = []

    def kill_one_busy_worker(done: int, total: int) -> None:
        if not killed and done < total:
            pid = kill_a_busy_worker("_score_chunk", seconds=10)
            if pid is not None:
                killed.append(pid)

    summary = run_batch(BatchConfig(models=(str(exported_patchcore),), inputs=(str(archive),),
                                    cluster=CLUSTER, chunk_size=2, progress=False),
                        on_chunk=kill_one_busy_worker)
    assert killed, "no busy worker was found to kill"
    paths = collect_paths([str(archive)])
    assert sorted(row["path"] for row in summary.rows) == sorted(paths)
    assert summary.failures == 0


def test_two_models_give_both_verdicts_per_part_and_a_summary(exported_patchcore,
                                                             second_patchcore, archive):
    summary = run_batch(BatchConfig(models=(str(exported_patchcore), str(second_patchcore)),
                                    inputs=(str(archive),), cluster=CLUSTER, progress=False))
    assert len(summary.rows) == 2 * 48
    comparison = summary.comparison
    assert comparison["parts"] == 48 and comparison["models"] == ["patchcore", "patchcore_b"]
    assert sum(comparison["verdict_pairs"].values()) == 48
    by_path: dict[str, dict[str, str]] = {}
    for row in summary.rows:
        by_path.setdefault(row["path"], {})[row["model"]] = row["verdict"]
    assert comparison["disagree"] == sum(len(set(v.values())) > 1 for v in by_path.values())


def test_errors_are_one_clear_line(exported_patchcore, copy_of, tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        run_batch(BatchConfig(models=(str(exported_patchcore),),
                              inputs=(str(tmp_path / "nope"),), progress=False))
    with pytest.raises(ConfigError, match="ray://"):
        ClusterConfig(address="localhost:1234")
    bare = copy_of(exported_patchcore)
    import shutil

    shutil.rmtree(bare / "onnx")
    with pytest.raises(BundleError, match="defectscope export"):
        run_batch(BatchConfig(models=(str(bare),), inputs=(str(tmp_path),), progress=False))
    with pytest.raises(ConfigError, match="onnxruntime"):
        BatchConfig(models=("m",), inputs=("i",), backend="torch")


def test_a_tampered_payload_is_refused_on_the_worker_side(exported_patchcore, tmp_path):
    import dataclasses

    from defectscope.distributed.transfer import materialise, pack_bundle

    payload = pack_bundle(exported_patchcore)
    rel, data = payload.files[0]
    bad = dataclasses.replace(payload, files=((rel, data + b"\0"),) + payload.files[1:])
    with pytest.raises(BundleError, match="digest"):
        materialise(bad, tmp_path)
    assert load_runtime(materialise(payload, tmp_path)).model_version


def test_the_package_and_its_workers_never_import_torch():
    import subprocess
    import sys

    code = ("import sys, defectscope.distributed, defectscope.distributed.worker, "
            "defectscope.cli.batch; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_cli_help_and_a_bad_address_is_one_line(exported_patchcore, archive, capsys):
    from defectscope.cli import main

    with pytest.raises(SystemExit):
        main(["batch", "--help"])
    assert "--address" in capsys.readouterr().out
    code = main(["batch", "--model", str(exported_patchcore), "--input", str(archive),
                 "--address", "nowhere:1"])
    assert code == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def test_cli_writes_parquet(exported_patchcore, archive, tmp_path, capsys):
    from defectscope.cli import main

    out = tmp_path / "r.parquet"
    assert main(["batch", "--model", str(exported_patchcore), "--input", str(archive),
                 "--out", str(out), "--no-progress", "--workers", "1"]) == 0
    assert out.is_file() and "48 images" in capsys.readouterr().out
