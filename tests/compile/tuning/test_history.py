"""The search's tuning history (compile/tuning/history.py): logs/progress.csv per database, its clock across resumes."""


def test_progress_file_restarts_for_a_new_database_and_continues_the_clock_on_resume(tmp_path):
    from tvmdeploy.compile.tuning.database import PROGRESS_FILE
    from tvmdeploy.compile.tuning.history import HistoryWriter

    path = tmp_path / PROGRESS_FILE
    path.parent.mkdir()
    path.write_text("1168.3,480,3.2539\n")  # left by a database since deleted: not part of the new curve
    HistoryWriter(tmp_path, resume=False).write([(15.0, 16, 3.5), (31.5, 31, None)])
    assert path.read_text() == "15.0,16,3.5000\n31.5,31,\n"
    HistoryWriter(tmp_path, resume=True).write([(2.0, 40, 3.25)])  # a resumed search: minutes keep counting
    assert path.read_text().splitlines()[-1] == "33.5,40,3.2500"
