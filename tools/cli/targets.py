"""`tvmdeploy targets`: list the target profiles."""

from __future__ import annotations

import argparse
import json

from tvmdeploy.targets import all_profiles


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    profiles = all_profiles()
    if args.json:
        rows = [
            {
                "name": p.name,
                "description": p.description,
                "device": p.device,
                "arch": p.arch,
                "target": p.target,
                "threads": p.threads,
                "rpc_key": p.rpc_key,
                "cross_compiler": p.cross_compiler.command if p.cross_compiler else None,
                "cross_compiler_package": p.cross_compiler.package if p.cross_compiler else None,
                "cpu_flags": list(p.cpu_flags),
                "tuning_trials": p.tuning_trials,
                "runs_here": p.runs_on_this_machine,
            }
            for p in profiles
        ]
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(p.name) for p in profiles)
    print(f"{'profile':<{width}}  {'device':<6} {'arch':<8} {'runs here':<9} target / description")
    for p in profiles:
        target = p.target
        cpu = target.get("mcpu") or target.get("arch", "")
        print(
            f"{p.name:<{width}}  {p.device:<6} {p.arch:<8} {'yes' if p.runs_on_this_machine else 'no':<9} "
            f"{target['kind']} {cpu}: {p.description}"
        )
    return 0
