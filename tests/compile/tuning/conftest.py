"""A small tuning history shared by the tests of what is made from one (rerank, ship, report)."""

import pytest


@pytest.fixture(scope="session")
def history(tmp_path_factory, tiny_classifier_factory, avx2_profile):
    """A tiny model and a database with 3 measured candidates for each of its 2 conv tasks."""
    from tvmdeploy.compile.tuning.driver import tune

    model = tiny_classifier_factory(tmp_path_factory.mktemp("model") / "tiny.onnx")
    result = tune(
        model,
        avx2_profile,
        trials=6,
        ops="all",
        auto_seed=False,
        log_dir=tmp_path_factory.mktemp("db") / "history",
        trials_per_iter=3,
        max_trials_per_task=3,
        measure_baseline=False,
        progress_bar=False,
        quick_measure=True,
        only=lambda info: "conv2d" in info.name,
    )
    return model, result
