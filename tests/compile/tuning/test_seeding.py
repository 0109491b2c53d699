"""Seeding a tuning database: tile sizes of a schedule tuned for one loop refitted to another (compile/tuning/seeding.py).

The end-to-end seeding paths (from another database, from similar workloads, from the default schedules) run in
tests/compile/tuning/test_driver.py, where a tuned tiny model is at hand."""

import numpy as np
import pytest

from tvmdeploy.compile.tuning.seeding import fit_tile


@pytest.mark.parametrize(
    ("extent", "factors", "fitted"),
    [
        (64, [2, 4, 1, 8], [2, 4, 1, 8]),  # the extent it was tuned for: unchanged
        (96, [2, 4, 1, 8], [3, 4, 1, 8]),  # the outermost takes what the inner ones leave
        (40, [1, 2, 4, 16], [1, 1, 4, 10]),  # 16 does not divide 40: its largest divisor <= 16 that does
        (7, [1, 2, 4, 16], [1, 1, 1, 7]),
        (1, [4, 4], [1, 1]),
    ],
)
def test_fit_tile_keeps_the_shape_of_the_tuned_tiles(extent, factors, fitted):
    assert fit_tile(extent, factors) == fitted
    assert np.prod(fitted) == extent
