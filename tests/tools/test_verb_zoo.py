"""`tvmdeploy zoo`: the table and the JSON list, without importing torch."""

from __future__ import annotations

import json
import subprocess
import sys

from tvmdeploy.tools.cli import main


def test_zoo_table(capsys):
    assert main(["zoo"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["name", "source", "width", "params(M)", "FLOPs(M)", "top1", "top5"]
    rows = {line.split()[0]: line.split() for line in out[2:11]}
    assert len(rows) == 9
    assert rows["ppcls_mobilenetv2_x2_0"][1:] == ["ppcls", "2.00", "11.331", "1217.26", "75.230", "92.580"]
    assert rows["torchvision_mobilenet_v2"][1:4] == ["torchvision", "1.00", "3.505"]


def test_zoo_json(capsys):
    assert main(["zoo", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert len(records) == 9 and all(set(r) == {"name", "source", "width", "params_m", "flops_m", "top1", "top5"} for r in records)
    by_name = {r["name"]: r for r in records}
    assert by_name["ppcls_mobilenetv2_ssld"] == {
        "name": "ppcls_mobilenetv2_ssld", "source": "ppcls", "width": 1.0,
        "params_m": 3.54, "flops_m": 327.842, "top1": 76.74, "top5": 93.39,
    }
    assert by_name["timm_mobilenetv2_100"]["source"] == "timm"


def test_zoo_does_not_import_torch():
    code = (
        "import sys; from tvmdeploy.tools.cli import main; main(['zoo', '--json']); "
        "sys.exit(1 if 'torch' in sys.modules or 'tvm' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
