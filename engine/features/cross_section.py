"""Cross-sectional normalisation: each feature relative to the eligible universe at one decision time."""

from __future__ import annotations

import numpy as np
import pandas as pd


def group_zscore(values: pd.Series, groups: pd.Series, mask: pd.Series) -> pd.Series:
    """(x - mean) / population std within each group over rows where `mask`; 0 when the group has no
    dispersion (a lone symbol is average by definition), NaN outside the mask."""
    x = values.where(mask)
    mean = x.groupby(groups, sort=False).transform("mean")
    dev = x - mean
    std = np.sqrt((dev * dev).groupby(groups, sort=False).transform("mean"))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = dev / std
    return z.where(std > 0, 0.0).where(x.notna())


def group_pct_rank(values: pd.Series, groups: pd.Series, mask: pd.Series) -> pd.Series:
    """Percentile rank in (0, 1] within each group (average ties), NaN outside the mask."""
    return values.where(mask).groupby(groups, sort=False).rank(pct=True, method="average")


def add_cross_sectional(
    panel: pd.DataFrame, features: list[str], *, by: str = "decision_time", mask_col: str = "eligible"
) -> pd.DataFrame:
    """Add `<feature>_z` and `<feature>_pct` columns computed over the eligible rows of each decision time."""
    groups = panel[by]
    mask = panel[mask_col]
    new = {}
    for f in features:
        new[f"{f}_z"] = group_zscore(panel[f], groups, mask)
        new[f"{f}_pct"] = group_pct_rank(panel[f], groups, mask)
    return pd.concat([panel, pd.DataFrame(new, index=panel.index)], axis=1)
