"""The `tvmdeploy` command line: one sub-command per verb module, thin over the library API."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys

from tvmdeploy.runtime.errors import TvmDeployError, spelling

# Verb name -> module under tvmdeploy.tools.cli that defines `add_arguments(parser)` and `run(args) -> int`.
# Modules are imported only when their verb runs, so `tvmdeploy zoo` never pays for torch or tvm.
VERBS: dict[str, tuple[str, str]] = {
    "zoo": ("zoo", "list the MobileNetV2 variants with params, FLOPs and card accuracy"),
    "export": ("export", "export a zoo model to ONNX (needs the [export] extra: torch)"),
    "targets": ("targets", "list the target profiles"),
    "quantize": ("quantize", "quantize an ONNX model to INT8 (QDQ), calibrated on a folder of images"),
    "build": ("build", "compile an ONNX model for a target profile into an artifact folder"),
    "run": ("run", "classify images with an artifact, locally or over RPC"),
    "bench": ("bench", "time an artifact against ONNX Runtime"),
    "tune": ("tune", "tune the convolution kernels with MetaSchedule"),
    "rpc": ("rpc", "TVM RPC tracker and servers"),
    "board": ("board", "start or stop the emulated aarch64 board"),
    "compare": ("compare", "compare latency across targets"),
    "eval": ("eval", "top-1/top-5 accuracy over an image folder"),
    "bundle": ("bundle", "pack the runtime-only bundle for a device"),
}


# The library's messages name API parameters (runtime/errors.arg); the command line names its flags:
# `--` + the parameter with dashes (rpc_key -> --rpc-key), except where the flag is spelled otherwise.
FLAG_OF: dict[str, str] = {
    "rpc_server": "--rpc",  # tvmdeploy.load(rpc_server=) is --rpc HOST:PORT
    "call_timeout_s": "--rpc-call-timeout",
    "timeout_s": "--rpc-timeout",
}


def flag_of(param: str) -> str:
    """The command-line flag of an API parameter."""
    return FLAG_OF.get(param, "--" + param.replace("_", "-"))


def _load_verb(name: str):
    return importlib.import_module(f"tvmdeploy.tools.cli.{VERBS[name][0]}")


def _available_verbs() -> list[str]:
    available = []
    for name, (module, _) in VERBS.items():
        if importlib.util.find_spec(f"tvmdeploy.tools.cli.{module}") is not None:
            available.append(name)
    return available


def build_parser(verb: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tvmdeploy",
        description="MobileNetV2 from ONNX to tuned, verified native code with Apache TVM.",
    )
    noise = parser.add_mutually_exclusive_group()
    noise.add_argument("-v", "--verbose", action="store_true", help="show the library's progress messages (INFO)")
    noise.add_argument("-q", "--quiet", action="store_true", help="only errors from the library, no warnings")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for name in _available_verbs():
        verb_parser = sub.add_parser(name, help=VERBS[name][1], description=VERBS[name][1])
        # Only the chosen verb's module is imported to add its arguments.
        if name == verb:
            _load_verb(name).add_arguments(verb_parser)
    return parser


def _configure_logging(args: argparse.Namespace) -> None:
    """The library logs under 'tvmdeploy'; the CLI shows its warnings (or more/less with -v/-q) as plain lines."""
    level = logging.INFO if args.verbose else logging.ERROR if args.quiet else logging.WARNING
    logger = logging.getLogger("tvmdeploy")
    logger.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):  # main() may run often in one process
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (tests and callers may swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in VERBS else None)
    try:
        # Inside the try: argument types (e.g. --input-shape) raise TvmDeployError too.
        args = parser.parse_args(argv)
        _configure_logging(args)
        with spelling(flag_of):  # messages of the library name our flags
            return int(_load_verb(args.verb).run(args) or 0)
    except TvmDeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
