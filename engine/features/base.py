"""The `FeatureComputer` interface: a named group of causal per-bar features.

Every computer reads only bars up to and including the current one (TA-Lib kernels are causal), so a
feature row stamped with bar open time `H` is known at `H + tf` and never changes when later data arrives.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from engine.bars import Bars


class FeatureComputer(ABC):
    #: group name, e.g. "momentum"
    name: ClassVar[str]
    #: output feature columns, in order
    columns: ClassVar[tuple[str, ...]]
    #: the longest indicator period used; drives the default warm-up (10x)
    longest_period: ClassVar[int]

    @abstractmethod
    def compute(self, bars: Bars) -> dict[str, np.ndarray]:
        """One float64 array per column, aligned with the bars (NaN during the unstable start)."""
