"""Cross-sectional normalisation: each value relative to the eligible universe at one decision time.

Implemented with integer group codes and `np.bincount` (not pandas groupby): a year of 2h decisions over
100 symbols is 400k rows and twenty of these transforms, which must stay well under a second.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from engine.reuse import reusable

#: below this relative dispersion a group is treated as flat (z = 0) instead of amplifying rounding noise
_FLAT = 1e-12


def group_codes(groups: pd.Series | np.ndarray) -> tuple[np.ndarray, int]:
    """Integer codes per group; a Series is factorised by pandas (fast for tz-aware datetimes)."""
    values = groups if isinstance(groups, pd.Series | pd.Index) else np.asarray(groups)
    if isinstance(values, pd.Series | pd.Index) and values.dtype.kind in "iu":
        values = values.to_numpy()  # plain integers (decision_ms): the same codes, and reusable in a sweep
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        return _integer_codes(values)
    codes, uniques = pd.factorize(values, sort=False)
    return np.asarray(codes, dtype=np.int64), len(uniques)


@reusable
def _integer_codes(values: np.ndarray) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(values, sort=False)
    return np.asarray(codes, dtype=np.int64), len(uniques)


def zscore_by_code(x: np.ndarray, codes: np.ndarray, n_groups: int, mask: np.ndarray) -> np.ndarray:
    """(x - mean) / population std per group over `mask & finite`; 0 in flat groups, NaN outside."""
    m = mask & np.isfinite(x)
    c = codes[m]
    n = np.bincount(c, minlength=n_groups).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(c, weights=x[m], minlength=n_groups) / n
        dev = x - mean[codes]
        std = np.sqrt(np.bincount(c, weights=dev[m] ** 2, minlength=n_groups) / n)
        flat = std <= _FLAT * np.maximum(np.abs(mean), 1e-300)
        z = np.where(flat[codes], 0.0, dev / std[codes])
    return np.where(m, z, np.nan)


def pct_rank_by_code(x: np.ndarray, codes: np.ndarray, n_groups: int, mask: np.ndarray) -> np.ndarray:
    """Percentile rank in (0, 1] per group (ties share their average rank), NaN outside the mask."""
    out = np.full(len(x), np.nan)
    idx = np.flatnonzero(mask & np.isfinite(x))
    if len(idx) == 0:
        return out
    sizes = np.bincount(codes[idx], minlength=n_groups)
    if n_groups * int(sizes.max()) <= 4 * len(idx) + 4096:
        # groups of similar size (a panel's decision times): one row-wise sort of a small dense matrix,
        # bit-identical to the general path below (ranks are exact half-integers) and several times faster
        c = codes[idx]
        starts = np.r_[0, np.cumsum(sizes)[:-1]]
        if (c[1:] >= c[:-1]).all():  # rows already grouped (time-major panels): positions need no sort
            pos = np.arange(len(idx)) - starts[c]
        else:
            by_group = np.argsort(c, kind="stable")
            pos = np.empty(len(idx), dtype=np.int64)
            pos[by_group] = np.arange(len(idx)) - starts[c[by_group]]
        out[idx] = pct_rank_dense(x[idx], c, pos, (n_groups, int(sizes.max())), np.ones(len(idx), dtype=bool))
        return out
    order = idx[np.lexsort((x[idx], codes[idx]))]
    c, v = codes[order], x[order]
    n = np.bincount(c, minlength=n_groups)
    group_start = np.r_[0, np.cumsum(n)[:-1]]
    pos = np.arange(len(order)) - group_start[c]  # 0-based position within the group
    new_run = np.r_[True, (c[1:] != c[:-1]) | (v[1:] != v[:-1])]
    run_id = np.cumsum(new_run) - 1
    run_first = pos[new_run]
    run_len = np.bincount(run_id)
    avg_rank = run_first[run_id] + (run_len[run_id] - 1) / 2.0 + 1.0
    out[order] = avg_rank / n[c]
    return out


def pct_rank_dense(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int],
                   mask: np.ndarray) -> np.ndarray:
    """`pct_rank_by_code` for a (time x symbol) layout: one row-wise sort of a small dense matrix.

    Each (row, col) pair must occur at most once; rows are the groups.
    """
    dense = np.full(shape, np.nan)
    m = mask & np.isfinite(x)
    dense[rows[m], cols[m]] = x[m]
    order = np.argsort(dense, axis=1)  # NaN sorts last
    srt = np.take_along_axis(dense, order, axis=1)
    width = shape[1]
    pos = np.broadcast_to(np.arange(width), shape)
    new_run = np.ones(shape, dtype=bool)
    new_run[:, 1:] = srt[:, 1:] != srt[:, :-1]
    run_end = np.ones(shape, dtype=bool)
    run_end[:, :-1] = new_run[:, 1:]
    first = np.maximum.accumulate(np.where(new_run, pos, 0), axis=1)
    last = np.minimum.accumulate(np.where(run_end, pos, width)[:, ::-1], axis=1)[:, ::-1]
    n_valid = np.isfinite(dense).sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        pct_sorted = ((first + last) / 2.0 + 1.0) / n_valid
    ranks = np.empty(shape)
    np.put_along_axis(ranks, order, pct_sorted, axis=1)
    return np.where(m, ranks[rows, cols], np.nan)


def group_zscore(values: pd.Series, groups: pd.Series, mask: pd.Series) -> pd.Series:
    """Series view of `zscore_by_code` (what strategies call for their own derived quantities)."""
    codes, n = group_codes(groups)
    z = zscore_by_code(values.to_numpy(np.float64), codes, n, np.asarray(mask, dtype=bool))
    return pd.Series(z, index=values.index)


def cross_sectional_arrays(
    columns: dict[str, np.ndarray], groups: np.ndarray, mask: np.ndarray, members: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """`<feature>_z` and `<feature>_pct` for each column, over the masked rows of each group.

    `members` (e.g. symbol codes, unique within a group) enables the dense row-wise ranking path.
    """
    codes, n = group_codes(groups)
    out: dict[str, np.ndarray] = {}
    for name, x in columns.items():
        x = np.asarray(x, dtype=np.float64)
        out[f"{name}_z"] = zscore_by_code(x, codes, n, mask)
        if members is not None and len(x):
            shape = (n, int(members.max()) + 1)
            out[f"{name}_pct"] = pct_rank_dense(x, codes, members, shape, mask)
        else:
            out[f"{name}_pct"] = pct_rank_by_code(x, codes, n, mask)
    return out


def symbol_sort_keys(symbols: pd.Series) -> np.ndarray:
    """Keys that sort rows by symbol name: the codes of a categorical whose categories are in name order
    (the decision panel's), which sort ten times faster than the names themselves, else the names."""
    if isinstance(symbols.dtype, pd.CategoricalDtype):
        categories = symbols.cat.categories
        if all(isinstance(c, str) for c in categories) and categories.is_monotonic_increasing:
            return symbols.cat.codes.to_numpy()
    return symbols.astype(str).to_numpy()
