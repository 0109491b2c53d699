"""`tvmdeploy run`: classify images with an artifact (shared preprocessing, softmax top-k).

Streams: images are decoded and inferred one artifact batch at a time, so memory stays flat for
any number of images. An unreadable image is listed on stderr with its reason and the others are
still classified; the exit status is then 1 (2 stays for usage errors).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tvmdeploy.runtime.errors import TvmDeployError
from tvmdeploy.tools.cli.module_opener import add_rpc_arguments, thread_count


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("artifact", type=Path, help="artifact folder written by `tvmdeploy build`")
    parser.add_argument("images", type=Path, nargs="+", help="image files (JPEG, PNG, ...) or folders of them")
    parser.add_argument("--topk", type=int, default=5, help="classes to show per image (default 5)")
    parser.add_argument("--threads", type=thread_count, help="CPU threads (default: the profile's)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    add_rpc_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import tvmdeploy
    from tvmdeploy.runtime.classify import (
        describe_failure,
        expand_image_paths,
        prediction_lines,
        to_record,
        unreadable_summary,
        weights_caveat,
    )

    if args.topk < 1:
        raise TvmDeployError(f"--topk must be >= 1, got {args.topk}")
    paths = expand_image_paths(args.images)
    model = tvmdeploy.load(
        args.artifact,
        args.rpc_tracker,
        args.rpc_key,
        args.threads,
        rpc_server=args.rpc,
        timeout_s=args.rpc_timeout,
        call_timeout_s=args.rpc_call_timeout,
    )
    manifest = model.manifest
    where = model.description
    caveat = weights_caveat(manifest.weights)
    results = model.classify_stream(paths, topk=args.topk)
    if not args.json:
        print(f"{manifest.model_name} on {manifest.profile} ({where})")
        if caveat:
            print(f"warning: {caveat}")
    records, failed = [], 0
    for item in results:
        if args.json:
            records.append(to_record(item))
        if not item.ok:
            failed += 1
            print(f"unreadable: {describe_failure(item)}", file=sys.stderr, flush=True)
        elif not args.json:
            print("\n".join(prediction_lines(item)), flush=True)
    if args.json:
        print(
            json.dumps(
                {
                    "artifact": str(args.artifact),
                    "model": manifest.model_name,
                    "profile": manifest.profile,
                    "device": where,
                    "weights": manifest.weights,
                    "warning": caveat or None,
                    "results": records,
                    "unreadable": failed,
                },
                indent=2,
            )
        )
    if failed:
        print(f"error: {unreadable_summary(failed, len(paths))}", file=sys.stderr)
        return 1
    return 0
