"""SQLite's doorbell (services/jobs/store/queue/doorbell.py): a commit that makes work
runnable wakes idle workers at once, across processes, instead of leaving them to
their next poll."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.jobs.store import JobStore
from services.jobs.store.queue import wakeups
from services.jobs.store.queue.doorbell import Doorbell, doorbell_folder

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bell(tmp_path: Path) -> Iterator[Doorbell]:
    folder = doorbell_folder(str(tmp_path / "jobs.db"))
    assert folder is not None
    doorbell = Doorbell(folder)
    yield doorbell
    doorbell.close()


def _waiter(bell: Doorbell, timeout: float) -> tuple[threading.Thread, threading.Event, list[bool]]:
    """A thread that starts listening, says so, then waits up to `timeout` for a ring."""
    listening, result = threading.Event(), []

    def run() -> None:
        bell.wait(0)  # binds this thread's socket
        listening.set()
        result.append(bell.wait(timeout))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert listening.wait(10)
    return thread, listening, result


def test_the_folder_is_short_private_and_shared_by_path(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-long-folder-name"] * 12) / "jobs.db"
    folder = doorbell_folder(str(deep))
    assert folder is not None and len(str(folder)) < 80  # socket paths are ~100 bytes
    assert doorbell_folder(str(deep)) == folder  # every process opening it agrees
    assert doorbell_folder(str(tmp_path / "other.db")) != folder
    assert doorbell_folder(":memory:") is None and doorbell_folder("") is None


def test_a_ring_wakes_a_waiting_thread(bell: Doorbell) -> None:
    assert bell.ring() == 0  # nobody listens yet
    thread, _, result = _waiter(bell, timeout=60)
    assert bell.ring() == 1
    thread.join(30)  # a missed ring would leave it waiting its full minute
    assert not thread.is_alive() and result == [True]
    assert (bell.folder.stat().st_mode & 0o777) == 0o700


def test_rings_that_come_while_busy_are_answered_by_the_next_wait(bell: Doorbell) -> None:
    bell.wait(0)  # this thread listens
    bell.ring()
    bell.ring()
    assert bell.wait(0) is True  # both read by one wake-up
    assert bell.wait(0) is False


def test_a_ring_from_another_process_wakes_the_waiter(bell: Doorbell) -> None:
    thread, _, result = _waiter(bell, timeout=60)
    code = (
        "import sys; from pathlib import Path; "
        "from services.jobs.store.queue.doorbell import Doorbell; "
        "print(Doorbell(Path(sys.argv[1])).ring())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(bell.folder)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "1"
    thread.join(30)
    assert not thread.is_alive() and result == [True]


def test_sockets_of_dead_processes_are_removed(bell: Doorbell) -> None:
    bell.folder.mkdir(mode=0o700, exist_ok=True)
    stale = bell.folder / "99999-deadbeef.sock"
    gone = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    gone.bind(str(stale))
    gone.close()  # bound, never unlinked: what a killed process leaves
    assert stale.exists()
    assert bell.ring() == 0
    assert not stale.exists()


def test_close_removes_the_sockets_and_the_folder(bell: Doorbell) -> None:
    bell.wait(0)
    assert len(list(bell.folder.iterdir())) == 1
    bell.close()
    assert not bell.folder.exists()


def test_a_submit_wakes_an_idle_worker_before_its_next_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With polls half a minute apart, only the doorbell can end the wait early."""
    monkeypatch.setattr(wakeups, "POLL_FIRST_SLEEP_SECONDS", 30.0)
    monkeypatch.setattr(wakeups, "POLL_MAX_SLEEP_SECONDS", 30.0)
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    worker_side, api_side = JobStore(url), JobStore(url)  # two processes' stores
    worker_side.migrate()
    try:
        account = api_side.create_account("acme", credits=10)
        assert worker_side.claim("w1", 30) is None
        listening, returned = threading.Event(), threading.Event()

        def idle_worker() -> None:
            worker_side.wait_for_work(0.01)  # the first wait binds the thread's socket
            listening.set()
            worker_side.wait_for_work(120)
            returned.set()

        threading.Thread(target=idle_worker, daemon=True).start()
        assert listening.wait(30)
        api_side.submit(
            account_id=account.id,
            operation="remove-background",
            params={},
            inputs={"image": "in/abc"},
            credits=2,
            pipeline=["remove-background"],
            estimated_seconds=1,
        )
        assert returned.wait(20)  # woken, not polled: the poll was 30 s away
        assert worker_side.claim("w1", 30) is not None
    finally:
        worker_side.close()
        api_side.close()


def test_without_a_usable_folder_it_sleeps_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the folder should be")
    bell = Doorbell(blocker)
    with caplog.at_level("WARNING"):
        assert bell.wait(0.01) is False  # a plain sleep: polling still finds work
        assert bell.wait(0.01) is False
    assert sum("cannot listen" in r.getMessage() for r in caplog.records) == 1
    assert bell.ring() == 0
    bell.close()
    assert blocker.read_text().startswith("a file")


def test_a_closed_doorbell_makes_no_new_sockets(bell: Doorbell) -> None:
    bell.wait(0)
    bell.close()
    assert bell.wait(0.01) is False  # a thread still waiting after close: plain sleep
    assert not bell.folder.exists()
