"""tools/dev/tune_card.py: where a card model's log goes when one of the same kernels came from another CPU."""

from __future__ import annotations

import json

from tvmdeploy.compile.tuning.database import META_FILE
from tvmdeploy.compile.tuning.log_choice import TUNED_ON
from tvmdeploy.tools.dev.tune_card import _folder_name


def test_folder_name_keeps_a_log_from_another_cpu(tmp_path):
    assert _folder_name(tmp_path, "tasks-k", "znver5") == "tasks-k"  # nothing shipped yet
    (tmp_path / "tasks-k").mkdir()
    (tmp_path / "tasks-k" / META_FILE).write_text(json.dumps({"model_key": "tasks-k"}))
    assert _folder_name(tmp_path, "tasks-k", "znver5") == "tasks-k"  # a log recording no CPU is continued
    (tmp_path / "tasks-k" / META_FILE).write_text(json.dumps({TUNED_ON: {"mcpu": "znver5"}}))
    assert _folder_name(tmp_path, "tasks-k", "znver5") == "tasks-k"
    assert _folder_name(tmp_path, "tasks-k", "icelake-server") == "tasks-k@icelake-server"
    assert _folder_name(tmp_path, "tasks-k", None) == "tasks-k"
