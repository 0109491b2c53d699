"""The zoo kernel index: recording, reading, key sharing, and shipped-log coverage (synthetic logs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tvmdeploy.compile.models import zoo, zoo_kernels
from tvmdeploy.compile.tuning import database
from tvmdeploy.runtime.errors import TvmDeployError


def H(short: str) -> str:
    return short.zfill(16)


def make_log(folder: Path, key: str, shashes: list[str]) -> Path:
    folder.mkdir(parents=True)
    (folder / database.META_FILE).write_text(json.dumps({"model_key": key}))
    (folder / database.WORKLOAD_FILE).write_text("".join(f'["{int(s, 16)}", "AAAA"]\n' for s in shashes))
    (folder / database.RECORD_FILE).write_text("".join(f"[{i}, {{}}]\n" for i in range(len(shashes))))
    return folder


def entry(key: str, kernels: list[str], glue: list[str]) -> dict:
    return {"key": key, "pipeline": "p", "kernels": [H(k) for k in kernels], "glue": [H(g) for g in glue]}


def test_record_and_load_keep_other_profiles_and_models(tmp_path):
    index = tmp_path / "zoo_kernels.json"
    assert zoo_kernels.load_index(index) == {"profiles": {}}
    zoo_kernels.record("x86-avx2", "b", entry("tasks-1", ["01"], []), index)
    zoo_kernels.record("x86-avx2", "a", entry("tasks-1", ["01"], []), index)
    zoo_kernels.record("x86-avx512", "a", entry("tasks-2", ["02"], []), index)
    zoo_kernels.record("x86-avx2", "a", entry("tasks-3", ["03"], []), index)  # replaces
    data = zoo_kernels.load_index(index)
    assert list(data["profiles"]["x86-avx2"]) == ["a", "b"]
    assert zoo_kernels.entry("x86-avx2", "a", index)["key"] == "tasks-3"
    assert zoo_kernels.entry("x86-avx512", "a", index)["key"] == "tasks-2"
    assert zoo_kernels.entry("x86-avx512", "b", index) is None
    assert zoo_kernels.shared_keys("x86-avx2", index) == {"tasks-3": ["a"], "tasks-1": ["b"]}


def test_unreadable_index_is_one_error(tmp_path):
    index = tmp_path / "zoo_kernels.json"
    index.write_text("{not json")
    with pytest.raises(TvmDeployError, match="cannot read the zoo kernel index"):
        zoo_kernels.load_index(index)


def test_coverage_counts_the_models_tasks_in_the_chosen_log(tmp_path):
    index, logs = tmp_path / "index.json", tmp_path / "logs"
    zoo_kernels.record("x86-avx2", "own", entry("tasks-own", ["01", "02", "03"], ["a1"]), index)
    zoo_kernels.record("x86-avx2", "cousin", entry("tasks-cousin", ["01", "02", "04"], ["a1"]), index)
    zoo_kernels.record("x86-avx2", "stranger", entry("tasks-x", ["07", "08", "09"], ["a1"]), index)
    make_log(logs / "x86-avx2" / "tasks-own", "tasks-own", [H("01"), H("02"), H("a1")])  # no record for 03

    own = zoo_kernels.coverage("own", "x86-avx2", index, logs)
    assert (own["log"], own["covered"], own["total"]) == ("tasks-own", 3, 4)
    assert own["why"].startswith("model key tasks-own; the only log that fits")
    cousin = zoo_kernels.coverage("cousin", "x86-avx2", index, logs)  # 2 of 3 conv/dense kernels: fits
    assert (cousin["log"], cousin["covered"], cousin["total"]) == ("tasks-own", 3, 4)
    assert zoo_kernels.coverage("stranger", "x86-avx2", index, logs) == {
        "key": "tasks-x",
        "log": None,
        "covered": 0,
        "total": 4,
        "why": "no shipped log fits",
        "applied": False,
    }
    assert zoo_kernels.coverage("absent", "x86-avx2", index, logs) is None


def test_shipped_index_lists_every_zoo_model_and_the_key_sharing():
    profiles = zoo_kernels.load_index()["profiles"]
    for profile in ("x86-avx512", "x86-avx2"):
        assert set(profiles[profile]) == set(zoo.names()), f"refresh: tools/dev/tune_card.py --profile {profile} --index-only"
        groups = sorted(sorted(names) for names in zoo_kernels.shared_keys(profile).values())
        assert ["timm_mobilenetv2_100", "torchvision_mobilenet_v2"] in groups
        assert ["ppcls_mobilenetv2_ssld", "ppcls_mobilenetv2_x1_0"] in groups
        assert len(groups) == 7  # six widths, ppcls x1.0 differing from torchvision/timm by one 1x1 conv
    assert profiles["x86-avx512"] == profiles["x86-avx2"]


def test_shipped_index_matches_the_lowering(exported_onnx):
    """The stored key of the smallest model is what export + lowering give today (catches a stale index)."""
    from tvmdeploy.compile.pipeline import PIPELINE_VERSION
    from tvmdeploy.compile.tuning.driver import prepared_tasks
    from tvmdeploy.targets import load_profile

    name = "ppcls_mobilenetv2_x0_25"
    fresh = zoo_kernels.describe(prepared_tasks(exported_onnx(name), load_profile("x86-avx2"))[1], PIPELINE_VERSION)
    assert zoo_kernels.entry("x86-avx2", name) == fresh
