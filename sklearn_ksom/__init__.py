"""sklearn-ksom: Kohonen self-organising-map vector quantisation.

- :class:`KohonenQuantizer`: codes on a grid, trained with a shrinking
  neighbourhood (KSOM, Irie, Csordas & Schmidhuber 2023).
- :class:`EMAQuantizer`: the EMA-VQ codebook of VQ-VAEs (no neighbourhood).
- :class:`MapImputer`: missing values filled from a map's nearest codes.

Both are scikit-learn estimators on NumPy, CuPy and array-API arrays; the
update math lives in :mod:`sklearn_ksom.core`; docs/design.md describes
the method and where each formula lives.
"""

from .estimators import EMAQuantizer, KohonenQuantizer
from .imputation import MapImputer
from .topology import Grid, NeighbourhoodSchedule

__all__ = ["EMAQuantizer", "Grid", "KohonenQuantizer", "MapImputer", "NeighbourhoodSchedule"]
__version__ = "0.1.0"
