"""The imputation benchmark's code runs (a few hundred images), so it cannot rot unnoticed.

The figures themselves come from ``python benchmarks/imputation.py``, never here.
"""

import pytest

from benchmarks import imputation

# A benchmark program, tested on a tiny run: `pytest -m "not benchmarks"` runs the library's tests alone.
pytestmark = pytest.mark.benchmarks

needs_images = pytest.mark.skipif(not imputation.FASHION_MNIST.exists(), reason="Fashion-MNIST is not installed")


@needs_images
def test_a_small_run_writes_the_table_and_the_picture(tmp_path):
    out, figure = tmp_path / "imputation.md", tmp_path / "imputation.png"
    imputation.main(["--rows", "300", "--sides", "3", "5", "--out", str(out), "--figure", str(figure)])
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "RMSE" not in line]
    assert [row.split(" | ")[0] for row in rows] == [
        "| SimpleImputer (mean)", "| KNNImputer (k=5)", "| KohonenQuantizer 3x3", "| KohonenQuantizer 5x5",
    ]
    assert rows[1].split(" | ")[2] == "1.000"  # KNNImputer against itself
    assert figure.stat().st_size > 0


@needs_images
def test_the_gaps_are_the_requested_share_and_fixed_by_the_seed():
    images, gappy = imputation.gappy_images(500, 0.2, seed=0)
    _, again = imputation.gappy_images(500, 0.2, seed=0)
    missing = gappy != gappy  # NaN
    assert abs(missing.mean() - 0.2) < 0.01
    assert ((again != again) == missing).all()
    assert (gappy[~missing] == images[~missing]).all()
