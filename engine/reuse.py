"""Reuse of pure computations across the configurations of a sweep, exact by construction.

Many statistics of a run do not depend on the configuration: a rank IC reads the scores and the outcome
ranks, a bootstrap draws its indices from the length, block and seed. A sweep evaluates hundreds of
configurations on one panel, so it opens a `reuse_scope()`; inside it, a function decorated with
`@reusable` returns the result it already computed for *equal* arguments (arrays compared element by
element, not only by a hash) instead of computing it again. Outside a scope nothing is cached, so a single
`run_walk_forward` behaves exactly as before; inside one, results are the same objects a call would have
produced, which is why a sweep row equals a single run.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

import numpy as np

F = TypeVar("F", bound=Callable[..., Any])
_SCOPE: ContextVar[dict[str, OrderedDict] | None] = ContextVar("engine_reuse_scope", default=None)
#: entries kept per function: a sweep alternates between a few cost levels and blocks, not hundreds
PER_FUNCTION = 8


@contextmanager
def reuse_scope() -> Iterator[None]:
    """Within this block, `@reusable` functions return earlier results for equal arguments."""
    token = _SCOPE.set({})
    try:
        yield
    finally:
        _SCOPE.reset(token)


#: elements of a large array that its fingerprint reads (equality on a hit reads them all)
SAMPLE = 4096


def _digest(value: Any) -> Any:
    """A hashable fingerprint: arrays by dtype, shape and a sample of their elements.

    It only finds the candidate entry; a hit still compares every element (`_same`), so two arrays that
    share a fingerprint can never share a result. Sampling keeps the fingerprint of a 400k-row column at a
    few microseconds instead of hashing megabytes.
    """
    if isinstance(value, np.ndarray):
        flat = value.reshape(-1)
        sample = flat[:: max(1, len(flat) // SAMPLE)]
        if value.dtype == object:
            return ("object-array", value.shape, hash(tuple(sample.tolist())))
        return ("array", value.dtype.str, value.shape, hash(np.ascontiguousarray(sample).tobytes()))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_digest(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _digest(v)) for k, v in sorted(value.items())))
    hash(value)  # raises TypeError for unhashable arguments: such calls are not reused
    return value


_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal dtype, shape and elements. Numbers are compared bit for bit (one integer comparison per
    element, NaN included), which is stricter than value equality only for -0.0 vs 0.0: a miss, never
    a wrong hit."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a is b:
        return True
    size = a.dtype.itemsize
    if a.dtype.kind in "biuf" and size in _UINT and a.flags.c_contiguous and b.flags.c_contiguous:
        return bool(np.array_equal(a.view(_UINT[size]), b.view(_UINT[size])))
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and _same_array(a, b)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _freeze(result: Any) -> Any:
    """Make the arrays of a shared result read-only: a caller that mutated one would change the result of
    every later call, so it fails loudly instead."""
    if isinstance(result, np.ndarray):
        result.flags.writeable = False
    elif isinstance(result, tuple | list):
        for item in result:
            _freeze(item)
    return result


def reusable(fn: F) -> F:
    """Decorate a pure function of arrays and scalars whose result the caller never mutates."""
    name = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        scope = _SCOPE.get()
        if scope is None:
            return fn(*args, **kwargs)
        try:
            key = (_digest(args), _digest(kwargs))
        except TypeError:
            return fn(*args, **kwargs)
        entries = scope.setdefault(name, OrderedDict())
        hit = entries.get(key)
        if hit is not None and _same(hit[0], args) and _same(hit[1], kwargs):
            entries.move_to_end(key)
            return hit[2]
        result = _freeze(fn(*args, **kwargs))
        entries[key] = (args, kwargs, result)
        if len(entries) > PER_FUNCTION:
            entries.popitem(last=False)
        return result

    return wrapper  # type: ignore[return-value]
