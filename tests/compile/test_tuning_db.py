"""tuning_db.lock_database: one writer per tuning database; a killed writer frees it; readers are never blocked."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tvmdeploy.compile.tuning_db import LOCK_FILE, RECORD_FILE, WORKLOAD_FILE, lock_database, open_database
from tvmdeploy.runtime.errors import TvmDeployError

_HOLDER = textwrap.dedent("""
    import sys, time
    from tvmdeploy.compile.tuning_db import lock_database
    with lock_database(sys.argv[1], what="holder test"):
        print("locked", flush=True)
        sys.stdin.read()  # hold until the test closes our stdin (or kills us)
    print("released", flush=True)
""")


@pytest.fixture
def holder(tmp_path):
    """A second process holding the lock of tmp_path/db until its stdin is closed."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(tmp_path / "db")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
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
