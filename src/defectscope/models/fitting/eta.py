"""Time left in a training run, from the epochs done so far: the figure a progress line shows."""

from __future__ import annotations


def remaining_seconds(elapsed_s: float, epochs_done: int, epochs_total: int,
                      budget_s: float | None = None) -> float:
    """Seconds left if each remaining epoch takes the mean so far; never past ``budget_s``.

    Early stopping can end a run sooner, so this is an upper estimate.

    >>> remaining_seconds(60.0, 2, 10)
    240.0
    >>> remaining_seconds(60.0, 2, 10, budget_s=100.0)
    40.0
    """
    if epochs_done <= 0:
        return float("nan")
    left = elapsed_s / epochs_done * max(epochs_total - epochs_done, 0)
    if budget_s is not None:
        left = min(left, max(budget_s - elapsed_s, 0.0))
    return left


def format_remaining(seconds: float) -> str:
    """``'about 4 min left'`` / ``'about 40 s left'``, for a log line.

    >>> format_remaining(240.0)
    'about 4 min left'
    >>> format_remaining(40.4)
    'about 40 s left'
    """
    if seconds != seconds:  # NaN: nothing measured yet
        return "time left unknown"
    if seconds >= 90:
        return f"about {seconds / 60:.0f} min left"
    return f"about {seconds:.0f} s left"
