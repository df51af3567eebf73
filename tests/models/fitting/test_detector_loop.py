"""The detection loop's schedule: warm-up, then a cosine that follows steps or the time budget."""

from __future__ import annotations

import pytest

from defectscope.models.fitting.detector_loop import run_progress, warmup_cosine


def test_warmup_then_cosine_down_to_the_floor():
    factors = [warmup_cosine(step, 10, step / 100) for step in range(101)]
    assert factors[0] == pytest.approx(0.1) and factors[9] > 0.95
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
    assert factors[100] == pytest.approx(0.05)


def test_progress_follows_the_time_budget_when_it_runs_out_first():
    assert run_progress(10, 100, elapsed=5.0, max_seconds=None) == pytest.approx(0.1)
    assert run_progress(10, 100, elapsed=50.0, max_seconds=100.0) == pytest.approx(0.5)
    assert run_progress(90, 100, elapsed=5.0, max_seconds=100.0) == pytest.approx(0.9)
    assert run_progress(10, 100, elapsed=500.0, max_seconds=100.0) == 1.0


@pytest.mark.parametrize("eval_every", [1, 5])
def test_training_stops_mid_epoch_at_the_time_budget_and_keeps_the_best(eval_every):
    import time
    from types import SimpleNamespace

    import torch
    from torch import nn

    from defectscope.models.fitting.detector_loop import fit_detection_network

    class Toy(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor([3.0, -2.0]))

        def forward(self, images, targets=None):
            return {"loss": (self.w ** 2).sum()}

    def batches(epoch):
        for _ in range(100):
            time.sleep(0.01)
            yield [torch.zeros(1)], [{}]

    config = SimpleNamespace(seed=0, lr=0.05, weight_decay=0.0, warmup_epochs=0.1, grad_clip=0.0,
                             ema_decay=0.0, eval_every=eval_every, epochs=50, max_train_seconds=0.5)
    net = Toy()
    result = fit_detection_network(net, batches, 100, config=config, progress=False,
                                   validate=lambda n: -float((n.w.detach() ** 2).sum()), log=lambda m: None)
    assert result["stopped_early"] and result["epochs_run"] == 1
    assert "val" in result["history"][-1] and result["best_epoch"] == 1
    assert 10 < result["history"][0]["steps"] < 100 and result["seconds"] < 2.0
    assert float((net.w ** 2).sum()) < 13.0 and not net.w.requires_grad
