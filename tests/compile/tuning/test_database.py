"""database: one writer per database (a killed writer frees it, readers never blocked); packed histories."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tvmdeploy.compile.tuning.database import LOCK_FILE, RECORD_FILE, WORKLOAD_FILE, lock_database, open_database
from tvmdeploy.runtime.errors import TvmDeployError

_HOLDER = textwrap.dedent("""
    import sys, time
    from tvmdeploy.compile.tuning.database import lock_database
    with lock_database(sys.argv[1], what="holder test"):
        print("locked", flush=True)
        sys.stdin.read()  # hold until the test closes our stdin (or kills us)
    print("released", flush=True)
""")


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of tmp_path/db until its stdin is closed."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "db")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_second_writer_refused_naming_the_first(tmp_path, holder):
    with pytest.raises(TvmDeployError, match=rf"being written by PID {holder.pid} on .*: holder test"):
        with lock_database(tmp_path / "db"):
            pass
    holder.stdin.close()
    assert holder.stdout.readline().strip() == "released"
    assert holder.wait() == 0
    with lock_database(tmp_path / "db"):  # free again once the first writer is done
        pass


def test_killed_writer_does_not_leave_it_stuck(tmp_path, holder):
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / "db" / LOCK_FILE).exists()  # the file stays; the kernel dropped the lock with the process
    with lock_database(tmp_path / "db") as lock:
        assert f"PID {os.getpid()} " in lock.read_text()


def test_readers_work_while_a_writer_holds_it(tmp_path, holder):
    db = tmp_path / "db"
    (db / WORKLOAD_FILE).write_text("")
    (db / RECORD_FILE).write_text("")
    assert len(open_database(db, readonly=True, quiet=True)) == 0


def test_same_process_twice_is_refused_and_released_on_exit(tmp_path):
    with lock_database(tmp_path / "db"):
        with pytest.raises(TvmDeployError, match=f"PID {os.getpid()} "):
            with lock_database(tmp_path / "db"):
                pass
    with lock_database(tmp_path / "db"):
        pass


def test_released_when_the_block_raises(tmp_path):
    with pytest.raises(RuntimeError):
        with lock_database(tmp_path / "db"):
            raise RuntimeError("tuning failed")
    with lock_database(tmp_path / "db"):
        pass


def test_a_packed_history_unpacks_to_the_same_files_and_resumes(tmp_path):
    import io
    import tarfile

    from tvmdeploy.compile.tuning.database import HISTORY_ARCHIVE, pack_history, unpack_history

    folder = tmp_path / "history"
    folder.mkdir()
    # Records repeat themselves like MetaSchedule traces do: the archive must be far smaller.
    files = {
        RECORD_FILE: '[0, [["x", "trace"], [1e-05]]]\n' * 2000,
        WORKLOAD_FILE: '["w", 1]\n',
        "tuning_meta.json": '{"model_key": "k"}\n',
    }
    for name, text in files.items():
        (folder / name).write_text(text)
    archive = pack_history(folder)
    assert archive == folder / HISTORY_ARCHIVE and not list(folder.glob("*.json"))
    assert archive.stat().st_size < len(files[RECORD_FILE]) / 20
    assert unpack_history(folder) and {p.name: p.read_text() for p in folder.glob("*.json")} == files
    (folder / RECORD_FILE).write_text(files[RECORD_FILE] + '[1, "newer"]\n')  # a run not packed again yet
    unpack_history(folder)
    assert "newer" in (folder / RECORD_FILE).read_text()  # files on disk win over the archive
    assert not unpack_history(tmp_path / "nothing")

    with pytest.raises(TvmDeployError, match="corrupt tuning history archive"):
        (tmp_path / "bad").mkdir()
        (tmp_path / "bad" / HISTORY_ARCHIVE).write_bytes(b"not xz")
        unpack_history(tmp_path / "bad")
    evil = tmp_path / "evil"
    evil.mkdir()
    with tarfile.open(evil / HISTORY_ARCHIVE, "w:xz") as tar:
        info = tarfile.TarInfo("../escape.json")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"{}"))
    with pytest.raises(TvmDeployError, match="unexpected entry"):
        unpack_history(evil)
    assert not (tmp_path / "escape.json").exists()
    with pytest.raises(TvmDeployError, match="no tuning database to pack"):
        pack_history(tmp_path / "nothing")


def test_a_packed_history_keeps_the_search_progress_for_curves_by_minute(tmp_path):
    from tvmdeploy.compile.tuning.database import PROGRESS_FILE, pack_history, unpack_history

    folder = tmp_path / "history"
    (folder / "logs").mkdir(parents=True)
    (folder / RECORD_FILE).write_text('[0, [["x", "trace"], [1e-05]]]\n')
    (folder / WORKLOAD_FILE).write_text('["w", 1]\n')
    progress = "60.0,16,7.1\n120.0,32,6.9\n"
    (folder / PROGRESS_FILE).write_text(progress)
    pack_history(folder)
    fresh = tmp_path / "fresh"  # a new checkout: the archive only (logs/ is never committed)
    fresh.mkdir()
    (fresh / "history.tar.xz").write_bytes((folder / "history.tar.xz").read_bytes())
    assert unpack_history(fresh)
    assert (fresh / PROGRESS_FILE).read_text() == progress and (fresh / RECORD_FILE).is_file()
