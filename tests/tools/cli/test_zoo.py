"""`tvmdeploy zoo`: the table and the JSON list, without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys

from tvmdeploy.tools.cli.main import main


def test_zoo_table(capsys):
    assert main(["zoo", "--profile", "x86-avx2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "source", "width", "params(M)", "FLOPs(M)", "top1", "top5", "log", "(x86-avx2)"]
    rows = {line.split()[0]: line.split() for line in out[2:11]}
    assert len(rows) == 9
    assert rows["ppcls_mobilenetv2_x2_0"][1:7] == ["ppcls", "2.00", "11.331", "1217.26", "75.230", "92.580"]
    assert rows["torchvision_mobilenet_v2"][1:4] == ["torchvision", "1.00", "3.505"]
    # the shipped x1.0 log, every task ('*' where this host is not the CPU kind it was tuned on)
    assert rows["torchvision_mobilenet_v2"][7].rstrip("*") == "24/24"  # 10 of its 34 kernels merge into blocks
    assert "same kernels, one log (tasks-af5ec2b44180): timm_mobilenetv2_100, torchvision_mobilenet_v2" in out


def test_zoo_log_column_from_index_and_logs(capsys, monkeypatch, tmp_path):
    from tvmdeploy.compile.models import zoo_kernels
    from tvmdeploy.compile.tuning import log_choice

    index, logs = tmp_path / "index.json", tmp_path / "logs"
    shashes = [f"{n:016x}" for n in range(1, 5)]
    zoo_kernels.record(
        "x86-avx2", "ppcls_mobilenetv2_x0_5", {"key": "tasks-half", "pipeline": "p", "kernels": shashes[:3], "glue": shashes[3:]}, index
    )
    log = logs / "x86-avx2" / "tasks-half"
    log.mkdir(parents=True)
    (log / "tuning_meta.json").write_text(json.dumps({"model_key": "tasks-half"}))
    (log / "database_workload.json").write_text("".join(f'["{int(s, 16)}", "A"]\n' for s in shashes[:2]))
    (log / "database_tuning_record.json").write_text("[0, {}]\n[1, {}]\n")
    monkeypatch.setattr(zoo_kernels, "INDEX_FILE", index)
    monkeypatch.setattr(log_choice, "default_logs_root", lambda: logs)
    assert main(["zoo", "--profile", "x86-avx2"]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:11]}
    assert rows["ppcls_mobilenetv2_x0_5"][7] == "2/4"
    assert rows["torchvision_mobilenet_v2"][7] == "?"  # not in this index
    assert main(["zoo", "--profile", "x86-avx2", "--json"]) == 0
    record = {r["name"]: r for r in json.loads(capsys.readouterr().out)}["ppcls_mobilenetv2_x0_5"]
    assert record["shipped_log"] == {
        "key": "tasks-half",
        "log": "tasks-half",
        "covered": 2,
        "total": 4,
        "why": "model key tasks-half; the only log that fits; the log records no CPU",
        "applied": True,
        "profile": "x86-avx2",
    }


def test_zoo_json(capsys):
    assert main(["zoo", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 9
    assert all(set(r) == {"name", "source", "width", "params_m", "flops_m", "top1", "top5", "shipped_log"} for r in records)
    by_name = {r["name"]: r for r in records}
    assert {k: v for k, v in by_name["ppcls_mobilenetv2_ssld"].items() if k != "shipped_log"} == {
        "name": "ppcls_mobilenetv2_ssld",
        "source": "ppcls",
        "width": 1.0,
        "params_m": 3.54,
        "flops_m": 327.842,
        "top1": 76.74,
        "top5": 93.39,
    }
    assert by_name["timm_mobilenetv2_100"]["source"] == "timm"


def test_zoo_does_not_import_torch():
    code = (
        "import sys; from tvmdeploy.tools.cli.main import main; main(['zoo', '--json']); main(['zoo']); "
        "sys.exit(1 if 'torch' in sys.modules or 'tvm' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
