"""`engine.reuse`: results are reused only inside a scope and only for equal arguments."""

from __future__ import annotations

import numpy as np
import pytest

from engine.reuse import PER_FUNCTION, reusable, reuse_scope

CALLS: list[tuple] = []


@reusable
def total(x: np.ndarray, scale: float = 1.0) -> float:
    CALLS.append((x.copy(), scale))
    return float(np.nansum(x) * scale)


def test_nothing_is_reused_outside_a_scope() -> None:
    CALLS.clear()
    x = np.arange(5.0)
    assert total(x) == total(x) == 10.0
    assert len(CALLS) == 2


def test_equal_arguments_reuse_the_result_inside_a_scope() -> None:
    CALLS.clear()
    x = np.array([1.0, np.nan, 3.0])
    with reuse_scope():
        first = total(x, scale=2.0)
        assert total(x.copy(), scale=2.0) == first == 8.0  # an equal copy (NaN included) hits
        assert len(CALLS) == 1
        total(x, scale=3.0)  # another scalar
        total(x.astype(np.float32), scale=2.0)  # another dtype
        y = x.copy()
        y[0] = 1.0000000001
        total(y, scale=2.0)  # another value
        assert len(CALLS) == 4
    total(x, scale=2.0)  # the scope is closed: computed again
    assert len(CALLS) == 5


def test_a_hash_collision_cannot_return_a_wrong_result(monkeypatch) -> None:
    import engine.reuse as reuse

    CALLS.clear()
    monkeypatch.setattr(reuse, "_digest", lambda value: "same key for everything")
    with reuse_scope():
        assert total(np.ones(3)) == 3.0
        assert total(np.ones(4)) == 4.0  # same key, different arrays: computed, not reused
    assert len(CALLS) == 2


def test_the_cache_is_bounded() -> None:
    CALLS.clear()
    with reuse_scope():
        for i in range(PER_FUNCTION + 2):
            total(np.full(3, float(i)))
        total(np.full(3, 0.0))  # evicted (least recently used): computed again
        total(np.full(3, float(PER_FUNCTION + 1)))  # still cached
    assert len(CALLS) == PER_FUNCTION + 3


def test_arrays_differing_outside_the_fingerprint_sample_are_not_confused() -> None:
    from engine.reuse import SAMPLE, _digest

    CALLS.clear()
    a = np.zeros(10 * SAMPLE)
    b = a.copy()
    b[1] = 1.0  # the fingerprint reads every 10th element: same fingerprint, different array
    assert _digest(a) == _digest(b)
    with reuse_scope():
        assert total(a) == 0.0 and total(b) == 1.0 and total(a) == 0.0
    assert len(CALLS) == 3  # b was computed; it then replaced a's entry under the shared fingerprint


@reusable
def doubled(x: np.ndarray) -> tuple[np.ndarray, int]:
    return x * 2, len(x)


def test_shared_results_are_read_only_inside_a_scope() -> None:
    outside, _ = doubled(np.ones(3))
    outside[0] = 5.0  # outside a scope the caller owns its result
    with reuse_scope():
        shared, n = doubled(np.ones(3))
        assert n == 3 and doubled(np.ones(3))[0] is shared
        with pytest.raises(ValueError, match="read-only"):
            shared[0] = 5.0
