"""sklearn-ksom: Kohonen self-organising-map vector quantisation.

- :class:`KohonenQuantizer`: codes on a grid, trained with a shrinking
  neighbourhood (KSOM, Irie, Csordas & Schmidhuber 2023).
- :class:`EMAQuantizer`: the EMA-VQ codebook of VQ-VAEs (no neighbourhood).

Both are scikit-learn estimators on NumPy, CuPy and array-API arrays; the
update math lives in :mod:`sklearn_ksom.core`; docs/design.md describes
the method and where each formula lives.
"""

from .estimators import EMAQuantizer, KohonenQuantizer
from .topology import Grid, NeighbourhoodSchedule

__all__ = ["EMAQuantizer", "Grid", "KohonenQuantizer", "NeighbourhoodSchedule"]
__version__ = "0.1.0"
