"""Choosing a shipped log: fit by key or kernel coverage, then the closest CPU (synthetic logs, no TVM)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from tvmdeploy.compile.tuning import database, log_choice
from tvmdeploy.compile.tuning.log_choice import choose_log, closeness, find_log, fitting_logs, log_workloads

ZEN5 = {
    "vendor": "AuthenticAMD",
    "model_name": "AMD EPYC 9B45",
    "family": "26",
    "model": "2",
    "mcpu": "znver5",
    "cores": 2,
    "l1d_bytes": 48 * 1024,
    "l2_bytes": 1024**2,
    "l3_bytes": 32 * 1024**2,
}
ZEN4 = {**ZEN5, "model_name": "AMD EPYC 9654", "family": "25", "model": "17", "mcpu": "znver4"}
ZEN5_OTHER = {**ZEN5, "model_name": "AMD Ryzen 9 9950X", "model": "68"}
ICELAKE = {
    "vendor": "GenuineIntel",
    "model_name": "Intel Xeon Platinum 8375C",
    "family": "6",
    "model": "106",
    "mcpu": "icelake-server",
    "cores": 4,
    "l1d_bytes": 48 * 1024,
    "l2_bytes": 1280 * 1024,
    "l3_bytes": 54 * 1024**2,
}
SKYLAKE = {
    "vendor": "GenuineIntel",
    "model_name": "Intel Xeon Gold 6148",
    "family": "6",
    "model": "85",
    "mcpu": "skylake-avx512",
    "cores": 4,
    "l1d_bytes": 32 * 1024,
    "l2_bytes": 1024**2,
    "l3_bytes": 27 * 1024**2 + 512 * 1024,
}


def H(short: str) -> str:
    """A TaskInfo.shash-like 16-hex-digit hash."""
    return short.zfill(16)


def _hash(shash: str) -> str:
    """The decimal (signed) structural hash MetaSchedule writes for a 16-hex-digit TaskInfo.shash."""
    value = int(shash, 16)
    return str(value - 2**64 if value >= 2**63 else value)


def make_log(folder: Path, key: str, shashes: list[str], tuned_on: dict | None = None, recorded: int | None = None) -> Path:
    """A log holding one record for each of the first `recorded` workloads (all by default)."""
    folder.mkdir(parents=True)
    meta = {"model_key": key, "tasks": [{"shash": s, "class": "pointwise"} for s in shashes]}
    if tuned_on is not None:
        meta[log_choice.TUNED_ON] = tuned_on
    (folder / database.META_FILE).write_text(json.dumps(meta))
    (folder / database.WORKLOAD_FILE).write_text("".join(f'["{_hash(s)}", "AAAA"]\n' for s in shashes))
    count = len(shashes) if recorded is None else recorded
    (folder / database.RECORD_FILE).write_text("".join(f'[{i}, {{"trace": []}}]\n' for i in range(count)))
    return folder


def test_log_workloads_reads_hashes_of_recorded_workloads(tmp_path):
    shashes = ["00000000000000a1", "ffffffffffffff01", "8000000000000000"]  # the last two: negative in the file
    folder = make_log(tmp_path / "log", "tasks-x", shashes, recorded=2)
    assert log_workloads(folder) == set(shashes[:2])
    assert log_workloads(tmp_path / "missing") == set()


@pytest.mark.parametrize(
    "tuned_on, rank",
    [(ZEN5_OTHER, 0), (ZEN4, 2), (ICELAKE, 2), (None, 4), ({}, 4)],
)
def test_closeness_ranks(tuned_on, rank):
    assert closeness(tuned_on, ZEN5)[0][0] == rank


def test_same_vendor_and_family_without_mcpu_match():
    other_mcpu = {**ZEN5_OTHER, "mcpu": "znver5-next"}
    key, why = closeness(other_mcpu, ZEN5)
    assert key[0] == 1 and "same vendor and family" in why and "AuthenticAMD family 26" in why


def test_cache_sizes_break_ties_between_strangers():
    host = {**SKYLAKE, "vendor": "HygonGenuine", "family": H("24"), "mcpu": "znver1"}  # like neither
    assert closeness(SKYLAKE, host)[0] < closeness(ICELAKE, host)[0]


def test_choose_log_prefers_same_mcpu_then_family_then_caches_then_unknown(tmp_path):
    unknown = make_log(tmp_path / "tasks-k", "tasks-k", [H("01")])
    icelake = make_log(tmp_path / "tasks-k@icelake-server", "tasks-k", [H("01")], ICELAKE)
    zen4 = make_log(tmp_path / "tasks-k@znver4", "tasks-k", [H("01")], ZEN4)
    zen5 = make_log(tmp_path / "tasks-k@znver5", "tasks-k", [H("01")], ZEN5_OTHER)

    assert choose_log([unknown, icelake, zen4, zen5], ZEN5)[0] == zen5
    chosen, why = choose_log([unknown, icelake, zen4], ZEN5)
    assert chosen == zen4 and why.startswith("closest of 3 fitting logs: tuned on AMD EPYC 9654 (mcpu znver4)")
    assert choose_log([unknown, icelake], ICELAKE)[0] == icelake
    assert choose_log([unknown, zen4], ICELAKE)[0] == zen4  # any recorded CPU beats none
    chosen, why = choose_log([unknown], ZEN5)
    assert chosen == unknown and why == "the only log that fits; the log records no CPU"
    with pytest.raises(ValueError):
        choose_log([], ZEN5)


@pytest.mark.parametrize(
    "tuned_on, elsewhere", [(ZEN5_OTHER, False), (ZEN5, False), (ZEN4, True), (ICELAKE, True), (None, False), ({}, False)]
)
def test_tuned_elsewhere_means_another_vendor_or_family(tuned_on, elsewhere):
    # Zen 4 and Zen 5 differ in family: another CPU kind; a log that records no CPU is not judged.
    why = log_choice.tuned_elsewhere(tuned_on, ZEN5)
    assert (why is not None) is elsewhere
    if elsewhere:
        assert why.startswith(f"tuned on {tuned_on['model_name']} (mcpu {tuned_on['mcpu']})")


def test_choose_log_keeps_order_on_a_tie(tmp_path):
    first = make_log(tmp_path / "a", "tasks-k", [H("01")])
    second = make_log(tmp_path / "b", "tasks-k", [H("01")])
    assert choose_log([second, first], ZEN5)[0] == second


def test_fitting_logs_by_key_then_by_coverage(tmp_path):
    base = tmp_path / "x86-avx512"
    own = make_log(base / "tasks-own", "tasks-own", [H("01"), H("02"), H("04"), H("08")])
    other = make_log(base / "tasks-other", "tasks-other", [H("01"), H("02"), H("03"), H("05")])
    half = make_log(base / "tasks-half", "tasks-half", [H("01"), H("02"), H("06"), H("07")])
    assert fitting_logs(base, "tasks-own", {H("01"), H("02"), H("04"), H("08")}) == ([own], "model key tasks-own")
    # no log of its own: the best coverage (3/4) wins over 2/4; a 1/4 cover is no fit
    assert fitting_logs(base, "tasks-new", {H("01"), H("02"), H("03"), H("09")}) == ([other], "3/4 conv/dense kernels")
    assert fitting_logs(base, "tasks-new", {H("06"), H("07"), H("98"), H("99")}) == ([half], "2/4 conv/dense kernels")
    assert fitting_logs(base, "tasks-new", {H("07"), H("97"), H("98"), H("99")}) == ([], "")
    assert fitting_logs(tmp_path / "absent", "tasks-own", {H("01")}) == ([], "")


def test_coverage_counts_only_workloads_with_records(tmp_path):
    base = tmp_path / "p"
    make_log(base / "tasks-a", "tasks-a", [H("01"), H("02"), H("03"), H("04")], recorded=1)
    assert fitting_logs(base, "tasks-b", {H("01"), H("02"), H("03"), H("04")}) == ([], "")


def test_find_log_says_which_and_why(tmp_path, caplog):
    base = tmp_path / "x86-avx2"
    make_log(base / "tasks-k", "tasks-k", [H("01")])
    zen4 = make_log(base / "tasks-k@znver4", "tasks-k", [H("01")], ZEN4)
    with caplog.at_level(logging.INFO, logger="tvmdeploy.compile.tuning.log_choice"):
        assert find_log(base, "tasks-k", {H("01")}, host=ZEN5) == zen4
    # several fit and none was tuned on this CPU kind: said at warning level, visible without -v
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.WARNING,
            f"tuning log {zen4} (model key tasks-k): closest of 2 fitting logs: tuned on AMD EPYC 9654 "
            "(mcpu znver4), closest caches L1d/L2/L3 48 KiB/1 MiB/32 MiB",
        )
    ]
    assert find_log(base, "tasks-none", {H("77")}, host=ZEN5) is None


def test_module_imports_no_tvm():
    import subprocess

    code = "import sys, tvmdeploy.compile.tuning.log_choice; sys.exit(1 if 'tvm' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_tuning_log_choice_is_a_word_or_a_folder_parsed_in_one_place():
    from pathlib import Path

    from tvmdeploy.compile.tuning.log_choice import LogChoice, LogWord

    assert LogChoice.of("auto") == LogChoice(LogWord.AUTO) and LogChoice.of(LogWord.SHIPPED).looks_up
    assert LogChoice.of(None) == LogChoice(LogWord.DEFAULTS)  # the API's None: no log, the default schedules
    assert not LogChoice.of("none").default_schedules and LogChoice.of("defaults").default_schedules
    # A path object is always a folder, even one named like a word; a string naming no word is a folder too.
    assert LogChoice.of(Path("auto")) == LogChoice(None, Path("auto"))
    assert LogChoice.of("logs/x86") == LogChoice(None, Path("logs/x86")) and str(LogChoice.of("logs/x86")) == "logs/x86"
    assert LogChoice.of(LogChoice.of("shipped")) == LogChoice(LogWord.SHIPPED)
    # Folders and the no-lookup words resolve without tasks; only auto/shipped search the shipped logs.
    assert LogChoice.of("logs/x86").resolve([], None) == (Path("logs/x86"), "")
    assert LogChoice.of("defaults").resolve([], None) == (None, "")
