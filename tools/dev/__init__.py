"""Development scripts (benchmarks, card tuning, kernel efficiency, GPU device check, label generation); not shipped in the package."""
