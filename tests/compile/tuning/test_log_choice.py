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
ROCKETLAKE = {
    "vendor": "GenuineIntel",
    "model_name": "Intel(R) Xeon(R) Processor",
    "family": "6",
    "model": "167",
    "mcpu": "rocketlake",
    "cores": 2,
    "l1d_bytes": 48 * 1024,
    "l2_bytes": 2 * 1024**2,
    "l3_bytes": 480 * 1024**2,
}
EMERALDRAPIDS = {**ROCKETLAKE, "model": "207", "mcpu": "emeraldrapids", "l3_bytes": 300 * 1024**2}
TIGERLAKE = {**ICELAKE, "model_name": "11th Gen Intel(R) Core(TM) i7-1185G7", "model": "140", "mcpu": "tigerlake"}
ZEN3 = {**ZEN4, "model_name": "AMD EPYC 7763", "family": "25", "model": "1", "mcpu": "znver3", "l1d_bytes": 32 * 1024}
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


@pytest.mark.parametrize(
    "tuned_on, host, rank",
    [
        ({**ICELAKE, "model_name": "Intel Xeon Gold 6338"}, ICELAKE, 0),  # same mcpu
        (ROCKETLAKE, ICELAKE, 1),  # Cypress Cove: Sunny Cove back-ported
        (TIGERLAKE, ROCKETLAKE, 1),
        (EMERALDRAPIDS, ICELAKE, 2),  # same vendor and family (6), another core
        (SKYLAKE, ICELAKE, 2),
        (ICELAKE, SKYLAKE, 2),
        ({**EMERALDRAPIDS, "mcpu": "sapphirerapids"}, EMERALDRAPIDS, 1),
        (ZEN3, ZEN4, 1),  # Zen 4 is Zen 3's lineage
        (ZEN4, ZEN3, 1),
        (ZEN5, ZEN4, 2),  # Zen 5 is a new core
        (ZEN4, ZEN5, 2),
    ],
)
def test_closeness_ranks_by_core_lineage(tuned_on, host, rank):
    assert closeness(tuned_on, host)[0][0] == rank


def test_same_vendor_and_family_is_no_longer_kin():
    # Every Intel Core and Xeon since 2006 is family 6: an Emerald Rapids log on an Ice Lake is foreign.
    key, why = closeness(EMERALDRAPIDS, ICELAKE)
    assert key[0] == log_choice.FOREIGN_RANK
    assert why.startswith("tuned on Intel(R) Xeon(R) Processor (mcpu emeraldrapids)")
    assert closeness({**ZEN5_OTHER, "mcpu": "znver5-next"}, ZEN5)[0][0] == log_choice.FOREIGN_RANK


def test_a_kin_core_says_its_lineage():
    key, why = closeness(ROCKETLAKE, ICELAKE)
    assert key[0] == 1 and why == "tuned on a kin core (Sunny Cove: mcpu rocketlake, Intel(R) Xeon(R) Processor)"
    assert "kin core (Zen 3/Zen 4: mcpu znver3" in closeness(ZEN3, ZEN4)[1]


def test_kin_table_is_plain_data_with_each_mcpu_in_one_group():
    members = [mcpu for group in log_choice.KIN_CORES.values() for mcpu in group]
    assert len(members) == len(set(members))
    assert {"icelake-server", "rocketlake"} <= set(log_choice.KIN_CORES["Sunny Cove"])
    assert "znver5" not in members  # a new core: kin only to itself


def test_without_an_mcpu_only_the_same_cpu_model_counts():
    # A host read without TVM (`tvmdeploy zoo`) has no LLVM name: the same vendor, family and model is the same core.
    host = {**ROCKETLAKE, "mcpu": None}
    key, why = closeness(ROCKETLAKE, host)
    assert key[0] == 0 and why.startswith("tuned on the same CPU model (GenuineIntel family 6 model 167")
    assert closeness(ICELAKE, host)[0][0] == log_choice.FOREIGN_RANK  # kinship needs LLVM's names
    assert closeness({**ROCKETLAKE, "model": None}, host)[0][0] == log_choice.FOREIGN_RANK


def test_cache_sizes_break_ties_between_strangers():
    host = {**SKYLAKE, "vendor": "HygonGenuine", "family": H("24"), "mcpu": "znver1"}  # like neither
    assert closeness(SKYLAKE, host)[0] < closeness(ICELAKE, host)[0]


def test_choose_log_prefers_same_mcpu_then_caches_then_unknown(tmp_path):
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


def test_icelake_picks_the_rocketlake_log_and_leaves_the_emeraldrapids_log_out(tmp_path):
    # issue 22: on an Ice Lake server the Rocket Lake log beat the default schedules, the Emerald Rapids log did not.
    emerald = make_log(tmp_path / "tasks-k@emeraldrapids", "tasks-k", [H("01")], EMERALDRAPIDS)
    rocket = make_log(tmp_path / "tasks-k@rocketlake", "tasks-k", [H("01")], ROCKETLAKE)
    for order in ([emerald, rocket], [rocket, emerald]):
        chosen, why = choose_log(order, ICELAKE)
        assert chosen == rocket and why.startswith("closest of 2 fitting logs: tuned on a kin core (Sunny Cove: mcpu rocketlake")
    assert log_choice.tuned_elsewhere(ROCKETLAKE, ICELAKE) is None
    assert log_choice.tuned_elsewhere(EMERALDRAPIDS, ICELAKE).startswith("tuned on Intel(R) Xeon(R) Processor (mcpu emeraldrapids)")
    assert log_choice.left_out_by_auto(rocket, ICELAKE) is None and log_choice.left_out_by_auto(emerald, ICELAKE)
    # alone, the Emerald Rapids log is still what `shipped` would take; `auto` leaves it out (default schedules)
    assert choose_log([emerald], ICELAKE)[0] == emerald


def test_choose_log_ranks_same_mcpu_over_kin_over_foreign_and_caches_within_a_rank(tmp_path):
    own = make_log(tmp_path / "own", "tasks-k", [H("01")], {**ICELAKE, "l3_bytes": 8 * 1024**2})  # caches far off
    tiger = make_log(tmp_path / "tiger", "tasks-k", [H("01")], TIGERLAKE)  # kin, the host's caches
    rocket = make_log(tmp_path / "rocket", "tasks-k", [H("01")], ROCKETLAKE)  # kin, other caches
    emerald = make_log(tmp_path / "emerald", "tasks-k", [H("01")], EMERALDRAPIDS)  # foreign
    skylake = make_log(tmp_path / "skylake", "tasks-k", [H("01")], SKYLAKE)  # foreign, closer caches than emerald
    assert choose_log([emerald, rocket, tiger, own], ICELAKE)[0] == own  # same mcpu beats kin, whatever the caches
    assert choose_log([emerald, rocket, tiger], ICELAKE)[0] == tiger  # caches break the tie among kin
    assert choose_log([emerald, tiger, rocket], ICELAKE)[0] == tiger
    assert choose_log([emerald, rocket], ICELAKE)[0] == rocket  # kin beats foreign with closer caches
    assert closeness(SKYLAKE, ICELAKE)[0] < closeness(EMERALDRAPIDS, ICELAKE)[0]
    assert choose_log([emerald, skylake], ICELAKE)[0] == skylake  # caches break the tie among the foreign


@pytest.mark.parametrize(
    "tuned_on, elsewhere", [(ZEN5_OTHER, False), (ZEN5, False), (ZEN4, True), (ICELAKE, True), (None, False), ({}, False)]
)
def test_tuned_elsewhere_means_neither_the_same_mcpu_nor_a_kin_core(tuned_on, elsewhere):
    # Zen 5 is a new core, not of Zen 4's lineage: another CPU kind; a log that records no CPU is not judged.
    why = log_choice.tuned_elsewhere(tuned_on, ZEN5)
    assert (why is not None) is elsewhere
    if elsewhere:
        assert why.startswith(f"tuned on {tuned_on['model_name']} (mcpu {tuned_on['mcpu']})")


def test_shipped_logs_on_a_zen4_host():
    """What `auto` does with each shipped log on a Zen 4 (this development host): none is of its lineage."""
    root = log_choice.default_logs_root()
    folders = [f for profile in log_choice.X86_PROFILES for f in sorted((root / profile).glob("tasks-*"))]
    assert folders
    for folder in folders:
        tuned_on = database.read_meta(folder).get(log_choice.TUNED_ON)
        if tuned_on and tuned_on.get("mcpu") in ("znver5", "rocketlake", "emeraldrapids"):
            assert log_choice.left_out_by_auto(folder, ZEN4), folder


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
