"""Tests for the shipped ImageNet-1k label table and its loader."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.runtime.labels import Labels, available_labels, load_labels
from tvmdeploy.tools.dev.gen_imagenet_labels import build_rows

REPO = Path(__file__).resolve().parents[2]
TSV = REPO / "runtime" / "data" / "imagenet1k_classes.tsv"


def test_table_integrity() -> None:
    labels = load_labels("imagenet1k")
    assert isinstance(labels, Labels) and labels.labels_id == "imagenet1k"
    assert len(labels) == labels.num_classes == 1000
    assert len(set(labels.wnids)) == 1000
    assert list(labels.wnids) == sorted(labels.wnids)  # standard order = sorted synset ids
    assert all(re.fullmatch(r"n\d{8}", w) for w in labels.wnids)
    assert all(n and n == n.strip() for n in labels.names)


@pytest.mark.parametrize(
    "index, wnid, name",
    [
        (0, "n01440764", "tench"),
        (1, "n01443537", "goldfish"),
        (281, "n02123045", "tabby"),
        (285, "n02124075", "Egyptian cat"),
        (409, "n02708093", "analog clock"),
        (999, "n15075141", "toilet tissue"),
    ],
)
def test_known_classes(index: int, wnid: str, name: str) -> None:
    labels = load_labels()
    assert (labels.wnids[index], labels.names[index]) == (wnid, name)
    assert labels.index_of_wnid(wnid) == index
    assert labels.name(index) == name


def test_index_of_wnid_roundtrip_and_errors() -> None:
    labels = load_labels()
    assert all(labels.index_of_wnid(w) == i for i, w in enumerate(labels.wnids))
    with pytest.raises(TvmDeployError, match="unknown WordNet id"):
        labels.index_of_wnid("n00000000")
    with pytest.raises(TvmDeployError, match="out of range"):
        labels.name(1000)


def test_unknown_labels_id() -> None:
    assert available_labels() == ["imagenet1k", "index"]
    with pytest.raises(TvmDeployError, match="unknown labels id 'coco'.*imagenet1k, index"):
        load_labels("coco")


def test_index_labels_fit_any_class_count() -> None:
    labels = load_labels("index", 10)
    assert labels.labels_id == "index" and labels.names == tuple(f"class {i}" for i in range(10))
    assert labels.name(9) == "class 9"
    with pytest.raises(TvmDeployError, match="unknown WordNet id"):
        labels.index_of_wnid("")  # no WordNet ids: synset folders cannot be mapped to index labels
    with pytest.raises(TvmDeployError, match="need the model's class count"):
        load_labels("index")


def test_shipped_table_must_fit_the_class_count() -> None:
    assert load_labels("imagenet1k", 1000) is load_labels()
    with pytest.raises(TvmDeployError, match="'imagenet1k' have 1000 classes but the model outputs 10"):
        load_labels("imagenet1k", 10)


def test_loader_is_cached() -> None:
    assert load_labels() is load_labels("imagenet1k")


def test_raw_file_format() -> None:
    raw = TSV.read_bytes()
    text = raw.decode("utf-8")
    assert raw.endswith(b"\n") and b"\r" not in raw
    lines = text.splitlines()
    assert lines[0] == "index\twnid\tname" and len(lines) == 1001
    assert all(line.count("\t") == 2 and line.split("\t")[0] == str(i) for i, line in enumerate(lines[1:]))


def test_table_is_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert "data/*" in pyproject["tool"]["setuptools"]["package-data"]["tvmdeploy.runtime"]


def test_generator_checks_its_inputs() -> None:
    labels = load_labels()
    wnids, names = list(labels.wnids), list(labels.names)
    assert build_rows(wnids, names)[1] == (1, "n01443537", "goldfish")
    with pytest.raises(SystemExit, match="sorted"):
        build_rows(wnids[1:2] + wnids[:1] + wnids[2:], names)
    with pytest.raises(SystemExit, match="unique"):
        build_rows(wnids[:999] + wnids[:1], names)
    with pytest.raises(SystemExit, match="index 0"):
        build_rows(wnids, names[1:] + names[:1])
