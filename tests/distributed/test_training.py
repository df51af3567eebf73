"""Fitting PatchCore and PaDiM in shards on a real local Ray instance (loopback, 2 CPUs, stopped
after each fit): PaDiM's merged sums give the one-machine Gaussians, PatchCore's two-stage coreset
a bundle that loads, predicts and ranks like the one-machine fit, and ``train --shards``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from defectscope.data.hashing import sha256_file
from defectscope.distributed.cluster import ClusterConfig
from defectscope.distributed.training import ShardedFitConfig, fit_sharded, split_shards
from defectscope.errors import ConfigError, DataError
from defectscope.models.registry import create_model

from tests.conftest import FAST_OPTIONS, defective_part, good_part, save
from tests.processes import kill_a_busy_worker

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SHARDED = ShardedFitConfig(shards=3, cluster=ClusterConfig(workers=2, threads=1))
HISTOGRAM = ({"name": "normalise", "method": "histogram"},)  # a step with learned state


@pytest.fixture(scope="module")
def goods(tmp_path_factory) -> list[tuple[str, str]]:
    root = tmp_path_factory.mktemp("shard_goods")
    paths = [save(root / f"{i:03d}.png", good_part(i)) for i in range(11)]
    return [(str(p), sha256_file(p)) for p in paths]


def _images(items):
    from defectscope.data.image_io import load_image

    return [load_image(path) for path, _ in items]


def test_split_shards_is_contiguous_near_equal_and_refuses_nothing():
    assert split_shards(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_shards([1, 2], 5) == [[1], [2]]
    with pytest.raises(DataError):
        split_shards([], 2)
    with pytest.raises(ConfigError):
        ShardedFitConfig(shards=0)
    with pytest.raises(ConfigError):
        ShardedFitConfig(oversample=0.5)


def test_models_that_cannot_merge_shards_are_refused_before_ray_starts(goods):
    import ray

    with pytest.raises(ConfigError, match="cannot be fitted in shards"):
        fit_sharded(create_model("classifier"), goods, SHARDED)
    assert not ray.is_initialized()


def fit_on_one_thread(model, goods):
    """The one-machine fit on one torch thread, as the workers run (``threads=1``): float32
    backbone features move by ~1e-5 with the thread count, which the inverse covariances
    amplify, and which thread count this process has depends on the tests run before."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return model.fit(_images(goods))
    finally:
        torch.set_num_threads(before)


def test_sharded_padim_equals_the_one_machine_fit(goods):
    import ray

    options = {**FAST_OPTIONS, "steps": HISTOGRAM}
    one = fit_on_one_thread(create_model("padim", **options), goods)
    sharded = create_model("padim", **options)
    summary = fit_sharded(sharded, goods, SHARDED)
    assert not ray.is_initialized()  # the local instance it started is stopped
    assert summary.shard_sizes == (4, 4, 3) and summary.images == 11
    assert sharded.n_train_images_ == one.n_train_images_ == 11
    np.testing.assert_array_equal(sharded.channels_.numpy(), one.channels_.numpy())
    assert sharded.grid_ == one.grid_
    np.testing.assert_allclose(sharded.mean_.numpy(), one.mean_.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sharded.inverse_covariance_.numpy(),
                               one.inverse_covariance_.numpy(), rtol=1e-4, atol=1e-5)
    for key, value in one.preprocessor.arrays().items():  # learned once, on the driver
        np.testing.assert_array_equal(sharded.preprocessor.arrays()[key], value)
    image = defective_part(901)[0]
    assert sharded.anomaly(image)[0] == pytest.approx(one.anomaly(image)[0], rel=1e-4)


def test_a_worker_killed_mid_fit_has_its_shard_retried_and_the_fit_is_unchanged(goods):
    """SIGKILL on a worker while it fits a shard: Ray retries that shard's task and the merged
    PaDiM is still the one-machine fit (every image counted once: the sums say so)."""
    killed: list[int] = []

    def kill_one(message: str) -> None:
        if message.startswith("fitting") and not killed:  # the shards were just submitted
            pid = kill_a_busy_worker("_fit_shard", seconds=60)
            if pid is not None:
                killed.append(pid)

    one = fit_on_one_thread(create_model("padim", **FAST_OPTIONS), goods)
    sharded = create_model("padim", **FAST_OPTIONS)
    summary = fit_sharded(sharded, goods, SHARDED, log=kill_one)
    assert killed, "no worker was found fitting a shard"
    assert summary.images == 11 and sharded.n_train_images_ == 11
    np.testing.assert_allclose(sharded.mean_.numpy(), one.mean_.numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(sharded.inverse_covariance_.numpy(),
                               one.inverse_covariance_.numpy(), rtol=1e-4, atol=1e-5)


def test_sharded_patchcore_bundle_loads_predicts_and_ranks_like_one_machine(goods, tmp_path):
    from defectscope.bundle import load_bundle, save_bundle
    from defectscope.evaluation.metrics import auroc

    one = fit_on_one_thread(create_model("patchcore", **FAST_OPTIONS), goods)
    sharded = create_model("patchcore", **FAST_OPTIONS)
    fit_sharded(sharded, goods, SHARDED)
    # the union stage keeps the one-machine bank size: coreset_ratio of every patch seen
    assert sharded.n_patches_seen_ == one.n_patches_seen_
    assert abs(len(sharded.memory_bank_) - len(one.memory_bank_)) <= SHARDED.shards
    assert sharded.memory_bank_.shape[1] == one.memory_bank_.shape[1]

    tests = [good_part(600 + i) for i in range(6)] + [defective_part(800 + i)[0]
                                                      for i in range(6)]
    labels = np.array([0] * 6 + [1] * 6)
    one_scores = np.array([one.anomaly(image)[0] for image in tests])
    shard_scores = np.array([sharded.anomaly(image)[0] for image in tests])
    assert auroc(shard_scores, labels) >= auroc(one_scores, labels) - 0.01
    np.testing.assert_allclose(shard_scores, one_scores, rtol=0.15)  # measured: <= 0.09

    sharded.set_threshold(float(np.median(shard_scores)))
    save_bundle(sharded, tmp_path / "model")
    loaded = load_bundle(tmp_path / "model").model
    result = loaded.predict(tests[-1])
    assert result.score == pytest.approx(shard_scores[-1], rel=1e-5)
    assert result.verdict.value == "NG"


def test_train_with_shards_writes_a_bundle_that_predicts(tiny_mvtec, tmp_path, capsys):
    from defectscope.bundle import read_bundle_info
    from defectscope.cli import main

    out = tmp_path / "model"
    assert main(["train", "--data", str(tiny_mvtec), "--format", "mvtec", "--model", "padim",
                 "--out", str(out), "--image-size", "64", "--tune", "off", "--shards", "2",
                 "--quiet"]) == 0
    assert "in 2 shards" in capsys.readouterr().err
    info = read_bundle_info(out)
    assert info["sharded_fit"]["shards"] == 2
    assert sum(info["sharded_fit"]["shard_sizes"]) == info["metrics"]["n_train_images"]
    assert main(["predict", "--model", str(out), str(tiny_mvtec / "test" / "blob"),
                 "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 4 and all(row["verdict"] in ("NG", "UNSURE") for row in rows)


def test_train_address_is_checked_and_other_models_are_refused(tiny_mvtec, tmp_path, capsys):
    from defectscope.cli import main

    base = ["train", "--data", str(tiny_mvtec), "--format", "mvtec", "--out",
            str(tmp_path / "m"), "--quiet", "--tune", "off"]
    assert main([*base, "--model", "patchcore", "--address", "localhost:6379"]) == 2
    assert "ray://HOST:PORT" in capsys.readouterr().err
    assert main([*base, "--model", "classifier", "--shards", "2"]) == 2
    assert "trains on one machine" in capsys.readouterr().err
    assert not Path(tmp_path / "m").exists()
