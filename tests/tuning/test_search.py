"""The tuner: picks the best candidate on its validation set, keeps the user's options, and
returns the best so far (saying so) when the budget runs out."""

import pytest

from defectscope.errors import ConfigError
from defectscope.models import create_model
from defectscope.tuning.search import (Candidate, anomaly_metrics, candidates_for, check_mode,
                                       choose, tune)
from defectscope.tuning.synthetic import synthetic_defects


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_tune_picks_the_candidate_best_on_the_validation_set():
    quality = {"a": (0.80, 0.70), "b": (0.95, 0.90), "c": (0.90, 0.99)}
    candidates = [Candidate(name, {"x": i}) for i, name in enumerate(quality)]
    chosen, rows, ran_out = tune(
        lambda c: dict(zip(("image_auroc", "pixel_auroc"), quality[c.name])), candidates, 1e9)
    assert chosen.name == "c"  # mean of image and pixel AUROC: c 0.945 > b 0.925 > a 0.75
    assert rows[2]["selection_score"] == pytest.approx(0.945)
    assert not ran_out and [r["candidate"] for r in rows] == ["a", "b", "c"]


def test_tie_goes_to_the_cheaper_earlier_candidate():
    rows = [{"candidate": "cheap", "image_auroc": 0.9, "pixel_auroc": None},
            {"candidate": "dear", "image_auroc": 0.9, "pixel_auroc": None}]
    assert choose(rows)["candidate"] == "cheap"


def test_budget_that_runs_out_returns_the_best_so_far_and_says_so():
    clock = FakeClock()

    def evaluate(candidate):
        clock.now += 10.0 * candidate.relative_cost  # 10 s per unit of cost
        return {"image_auroc": {"a": 0.7, "b": 0.8, "c": 0.99}[candidate.name]}

    candidates = [Candidate("a", {}, 1.0), Candidate("b", {}, 1.0), Candidate("c", {}, 4.0)]
    chosen, rows, ran_out = tune(evaluate, candidates, budget_seconds=45.0, clock=clock)
    assert ran_out
    assert chosen.name == "b"
    assert "skipped" in rows[2] and "45" in rows[2]["skipped"]


def test_first_candidate_always_runs_even_past_the_budget():
    chosen, rows, ran_out = tune(lambda c: {"image_auroc": 0.5}, [Candidate("only", {})], 0.0)
    assert chosen.name == "only" and not ran_out


def test_candidates_never_override_user_options():
    for candidate in candidates_for("patchcore", {"neighbourhood": 7}):
        assert candidate.options["neighbourhood"] == 7
    # the user fixed everything the candidates vary: nothing left to tune
    assert candidates_for("patchcore", {"image_size": 128, "max_side": 256,
                                        "neighbourhood": 5}) == []
    assert candidates_for("classifier", {}) == []


def test_a_second_scale_the_user_asks_for_joins_every_candidate():
    candidates = candidates_for("patchcore", {"context_downscale": 2})
    assert len(candidates) >= 2
    assert len({c.options["image_size"] for c in candidates}) == len(candidates)
    for candidate in candidates:  # the tuner varies resolution; the second scale stays on
        assert create_model("patchcore", **candidate.options).config.context_downscale == 2


def test_large_images_add_a_tiling_candidate_only_for_patchcore():
    names = [c.name for c in candidates_for("patchcore", {}, (1200, 1600, 3))]
    assert any("tiles" in n for n in names)
    assert not any("tiles" in c.name for c in candidates_for("patchcore", {}, (400, 600, 3)))
    assert not any("tiles" in c.name for c in candidates_for("padim", {}, (1200, 1600, 3)))


def test_bad_mode_and_empty_candidates_are_refused():
    with pytest.raises(ConfigError):
        check_mode("on")
    with pytest.raises(ConfigError):
        tune(lambda c: {}, [], 10)


def test_anomaly_metrics_on_a_real_model_rank_synthetic_defects(good_images):
    model = create_model("patchcore", image_size=64, max_side=64, coreset_ratio=0.5)
    model.fit(good_images[:6])
    defects = synthetic_defects(good_images[6:10], 8, seed=1)
    metrics = anomaly_metrics(model, good_images[6:10], defects)
    assert metrics["image_auroc"] is not None and 0.0 <= metrics["image_auroc"] <= 1.0
    assert metrics["pixel_auroc"] > 0.5


def test_real_defects_weigh_half_against_the_synthetic_ones():
    synthetic_favourite = {"image_auroc": 1.0, "pixel_auroc": 1.0,
                           "real_image_auroc": 0.6, "real_pixel_auroc": 0.6}
    real_favourite = {"image_auroc": 0.85, "pixel_auroc": 0.85,
                      "real_image_auroc": 0.9, "real_pixel_auroc": 0.9}
    rows = [{"candidate": "a", **synthetic_favourite}, {"candidate": "b", **real_favourite}]
    assert choose(rows)["candidate"] == "b"  # 0.875 vs 0.8


def test_anomaly_metrics_reports_real_defects_apart(good_images, defect_images):
    model = create_model("patchcore", image_size=64, max_side=64, coreset_ratio=0.5)
    model.fit(good_images[:6])
    metrics = anomaly_metrics(model, good_images[6:10], synthetic_defects(good_images[6:10], 4),
                              [(image, mask > 0) for image, mask in defect_images[:3]])
    assert {"image_auroc", "pixel_auroc", "real_image_auroc", "real_pixel_auroc"} <= set(metrics)
