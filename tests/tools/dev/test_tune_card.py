"""tools/dev/tune_card.py: where a card model's log goes when one of the same kernels came from another CPU."""

from __future__ import annotations

import json

from tvmdeploy.compile.tuning.database import META_FILE, pack_history
from tvmdeploy.compile.tuning.log_choice import TUNED_ON
from tvmdeploy.tools.dev.tune_card import _folder_name


def test_folder_name_keeps_a_log_from_another_cpu(tmp_path):
    assert _folder_name(tmp_path, "p", "tasks-k", "znver5") == "tasks-k"  # nothing shipped yet
    shipped = tmp_path / "p" / "tasks-k"
    shipped.mkdir(parents=True)
    (shipped / META_FILE).write_text(json.dumps({"model_key": "tasks-k"}))
    assert _folder_name(tmp_path, "p", "tasks-k", "znver5") == "tasks-k"  # a log recording no CPU is continued
    (shipped / META_FILE).write_text(json.dumps({TUNED_ON: {"mcpu": "znver5"}}))
    assert _folder_name(tmp_path, "p", "tasks-k", "znver5") == "tasks-k"
    assert _folder_name(tmp_path, "p", "tasks-k", "icelake-server") == "tasks-k@icelake-server"
    assert _folder_name(tmp_path, "p", "tasks-k", None) == "tasks-k"


def test_folder_name_keeps_apart_a_packed_history_from_another_cpu(tmp_path):
    """A history that was never shipped (slower than the defaults) still holds another CPU's measurements."""
    history = tmp_path / "history" / "p" / "tasks-k"
    history.mkdir(parents=True)
    (history / META_FILE).write_text(json.dumps({TUNED_ON: {"mcpu": "znver5"}}))
    pack_history(history)
    assert not (history / META_FILE).exists()
    assert _folder_name(tmp_path, "p", "tasks-k", "rocketlake") == "tasks-k@rocketlake"
    assert _folder_name(tmp_path, "p", "tasks-k", "znver5") == "tasks-k"
