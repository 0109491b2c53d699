"""Development-time generator for runtime/data/imagenet1k_classes.tsv (never run at run time).

The ImageNet-1k class order used by every torchvision/timm classifier is the sorted list of the
1000 ILSVRC-2012 WordNet ids. The ids come from timm's `timm/data/_info/imagenet_synsets.txt`
and the human-readable names from torchvision's `torchvision/models/_meta.py`
(`_IMAGENET_CATEGORIES`, same order). Both are read from wheels fetched once, offline:

    pip download --no-deps -d /tmp/wheels timm==1.0.31 torchvision==0.29.1
    cd /tmp/wheels && unzip -o -q 'timm-*.whl' timm/data/_info/imagenet_synsets.txt \
        && unzip -o -q 'torchvision-*.whl' torchvision/models/_meta.py
    python tools/dev/gen_imagenet_labels.py \
        --synsets /tmp/wheels/timm/data/_info/imagenet_synsets.txt \
        --torchvision-meta /tmp/wheels/torchvision/models/_meta.py \
        --out runtime/data/imagenet1k_classes.tsv

`_meta.py` is parsed with `ast`, not imported, so torch is not needed.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

_WNID = re.compile(r"^n\d{8}$")


def read_synsets(path: Path) -> list[str]:
    wnids = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [w for w in wnids if not _WNID.match(w)]
    if bad:
        raise SystemExit(f"{path}: not WordNet ids: {bad[:5]}")
    return wnids


def read_torchvision_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_IMAGENET_CATEGORIES" for t in node.targets):
            return [str(v) for v in ast.literal_eval(node.value)]
    raise SystemExit(f"{path}: no _IMAGENET_CATEGORIES assignment")


def build_rows(wnids: list[str], names: list[str]) -> list[tuple[int, str, str]]:
    if len(wnids) != 1000 or len(set(wnids)) != 1000:
        raise SystemExit(f"expected 1000 unique WordNet ids, got {len(wnids)} ({len(set(wnids))} unique)")
    if wnids != sorted(wnids):
        raise SystemExit("WordNet ids are not sorted: the standard index order is the sorted order")
    if len(names) != 1000:
        raise SystemExit(f"expected 1000 class names, got {len(names)}")
    # Spot checks against the well-known head of the list; a shifted list fails here.
    expected = {0: ("n01440764", "tench"), 1: ("n01443537", "goldfish"), 999: ("n15075141", "toilet tissue")}
    for i, (wnid, name) in expected.items():
        if (wnids[i], names[i]) != (wnid, name):
            raise SystemExit(f"index {i}: got {wnids[i]} {names[i]!r}, expected {wnid} {name!r}")
    for name in names:
        if "\t" in name or "\n" in name or not name.strip():
            raise SystemExit(f"class name unfit for TSV: {name!r}")
    return [(i, wnids[i], names[i]) for i in range(1000)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synsets", type=Path, required=True)
    parser.add_argument("--torchvision-meta", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    rows = build_rows(read_synsets(args.synsets), read_torchvision_names(args.torchvision_meta))
    lines = ["index\twnid\tname"] + [f"{i}\t{wnid}\t{name}" for i, wnid, name in rows]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(rows)} classes to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
