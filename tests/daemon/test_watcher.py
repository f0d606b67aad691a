"""The watcher side of the daemon: settling, inotify-vs-polling, hints from real events, trouble reports."""

from __future__ import annotations

import os
import queue
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from photoindex.config import DaemonConfig, ScanConfig
from photoindex.daemon.settle import OPEN_WRITER_FACTOR, Settler
from photoindex.daemon.watcher import Event, Hint, Trouble, Watcher, filesystem_of, read_mounts, watch_mode

# ---------------------------------------------------------------- settling (a manual clock, real files)

SETTLE = 2.0


def _write(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def test_a_stable_file_is_due_after_the_quiet_period_and_only_once(tmp_path: Path) -> None:
    photo = tmp_path / "a.jpg"
    _write(photo, 10)
    s = Settler(SETTLE)
    s.note(str(photo), 100.0)
    assert s.due(101.9) == []
    assert s.due(102.0) == [str(photo)]
    assert s.due(200.0) == [] and len(s) == 0


def test_a_file_that_grew_without_an_event_waits_again(tmp_path: Path) -> None:
    photo = tmp_path / "a.jpg"
    _write(photo, 10)
    s = Settler(SETTLE)
    s.note(str(photo), 100.0)
    _write(photo, 20)  # a slow copy or a network folder: no event, only a bigger file
    assert s.due(102.0) == []
    assert s.next_due(102.0) == SETTLE
    assert s.due(104.0) == [str(photo)]


def test_every_event_restarts_the_wait(tmp_path: Path) -> None:
    photo = tmp_path / "a.jpg"
    _write(photo, 10)
    s = Settler(SETTLE)
    s.note(str(photo), 100.0)
    s.note(str(photo), 101.5)
    assert s.due(102.5) == []
    assert s.due(103.5) == [str(photo)]


def test_an_open_writer_waits_longer_until_it_closes(tmp_path: Path) -> None:
    photo = tmp_path / "a.jpg"
    _write(photo, 10)
    s = Settler(SETTLE)
    s.note(str(photo), 100.0, writing=True)
    assert s.due(100.0 + SETTLE) == []  # stable, but the writer may only be pausing
    assert s.due(100.0 + SETTLE * OPEN_WRITER_FACTOR) == [str(photo)]

    s.note(str(photo), 200.0, writing=True)
    s.note(str(photo), 200.5, closed=True)
    assert s.due(200.5 + SETTLE) == [str(photo)]


def test_a_vanished_path_is_due_once_it_stayed_gone(tmp_path: Path) -> None:
    gone = str(tmp_path / "deleted.jpg")
    s = Settler(SETTLE)
    s.note(gone, 100.0)
    assert s.due(102.0) == [gone]


def test_a_folder_waits_for_activity_below_it_then_covers_it(tmp_path: Path) -> None:
    album = tmp_path / "album"
    _write(album / "a.jpg", 10)
    s = Settler(SETTLE)
    s.note(str(album), 100.0, folder=True)
    s.note(str(album / "a.jpg"), 101.0)
    _write(album / "b.jpg", 10)
    s.note(str(album / "b.jpg"), 101.5)
    assert s.due(102.5) == []  # the folder itself is quiet, but a copy into it goes on
    # Both the folder and its files are due: only the folder is handed out (its walk covers them).
    assert s.due(103.5) == [str(album)]
    assert len(s) == 0


def test_both_ends_of_a_move_are_released_together(tmp_path: Path) -> None:
    src, dest = str(tmp_path / "old"), str(tmp_path / "new")
    (tmp_path / "new").mkdir()
    s = Settler(SETTLE)
    s.note(src, 100.0, folder=True, partner=dest)
    s.note(dest, 101.0, folder=True, partner=src)
    assert s.due(102.0) == []  # the source has settled, the destination not yet
    assert s.due(103.0) == [dest, src]


def test_drop_under_forgets_a_folder_and_its_content(tmp_path: Path) -> None:
    s = Settler(SETTLE)
    for p in ("r/a.jpg", "r/sub/b.jpg", "rr/c.jpg"):
        s.note(str(tmp_path / p), 100.0)
    assert s.drop_under(str(tmp_path / "r")) == 2
    assert s.due(110.0) == [str(tmp_path / "rr/c.jpg")]


# ---------------------------------------------------------------- inotify or polling

MOUNTS = """\
/dev/mmcblk0p2 / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
nas:/photos /mnt/nas nfs4 rw,vers=4.2 0 0
user@host:/pics /home/me/remote fuse.sshfs rw 0 0
/dev/sda1 /media/usb\\040stick fuseblk rw 0 0
//srv/share /mnt/smb cifs rw 0 0
tmpfs /mnt/nas/cache tmpfs rw 0 0
"""


def test_the_mount_table_is_parsed_with_escapes_and_longest_prefix() -> None:
    mounts = read_mounts(MOUNTS)
    assert ("/media/usb stick", "fuseblk") in mounts
    assert filesystem_of("/mnt/nas/2024/a.jpg", mounts) == ("/mnt/nas", "nfs4")
    assert filesystem_of("/mnt/nas/cache/x", mounts) == ("/mnt/nas/cache", "tmpfs")
    assert filesystem_of("/mnt/nasty", mounts) == ("/", "ext4")  # a prefix by components, not by characters


@pytest.mark.parametrize(
    ("root", "mode"),
    [
        ("/mnt/nas/2024", "polling"),
        ("/home/me/remote/trip", "polling"),
        ("/mnt/smb", "polling"),
        ("/media/usb stick/DCIM", "inotify"),  # an NTFS/exFAT drive through fuseblk is still a local disk
        ("/home/me/Pictures", "inotify"),
    ],
)
def test_network_and_fuse_roots_are_polled(root: str, mode: str) -> None:
    assert watch_mode(root, (), read_mounts(MOUNTS))[0] == mode


def test_polling_roots_from_the_config_win(tmp_path: Path) -> None:
    mode, why = watch_mode(str(tmp_path / "photos" / "2024"), (str(tmp_path / "photos"),), read_mounts(MOUNTS))
    assert mode == "polling" and "polling_roots" in why


# ---------------------------------------------------------------- real watchers

linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/mounts"), reason="inotify is Linux-only")


def _drain(q: queue.SimpleQueue[Event], until: Callable[[list[Event]], bool], timeout: float = 10.0) -> list[Event]:
    """Collect events until `until(events)` holds (a deadline, not a timing assumption)."""
    got: list[Event] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(q.get(timeout=0.05))
        except queue.Empty:
            if until(got):
                return got
    raise AssertionError(f"timed out; got {got}")


def _paths(events: list[Event]) -> set[str]:
    return {e.path for e in events if isinstance(e, Hint)}


@pytest.fixture
def watch(tmp_path: Path) -> Iterator[Callable[..., tuple[Watcher, queue.SimpleQueue[Event]]]]:
    made: list[Watcher] = []

    def start(roots: list[Path], **kwargs: object) -> tuple[Watcher, queue.SimpleQueue[Event]]:
        q: queue.SimpleQueue[Event] = queue.SimpleQueue()
        daemon = kwargs.pop("daemon", DaemonConfig())
        w = Watcher(ScanConfig(), daemon, q, mounts_file=tmp_path / "no-mounts", **kwargs)  # type: ignore[arg-type]
        made.append(w)
        w.sync([str(r) for r in roots])
        return w, q

    yield start
    for w in made:
        w.stop()


@linux_only
def test_temporary_names_never_become_hints_and_renames_carry_the_final_name(
    tmp_path: Path, watch: Callable[..., tuple[Watcher, queue.SimpleQueue[Event]]]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    _, q = watch([root])
    (root / "x.jpg.tmp").write_bytes(b"x" * 100)
    (root / ".x.jpg.part").write_bytes(b"x" * 100)
    os.rename(root / "x.jpg.tmp", root / "x.jpg")
    (root / "notes.txt").write_text("not a photo")
    (root / "done.jpg").write_bytes(b"y")
    events = _drain(q, lambda ev: str(root / "done.jpg") in _paths(ev))
    assert _paths(events) == {str(root / "x.jpg"), str(root / "done.jpg")}
    closes = [e for e in events if isinstance(e, Hint) and e.path == str(root / "done.jpg") and e.closed]
    assert closes, "inotify's close-write reaches the settler as a hint"


@linux_only
def test_a_folder_move_gives_both_ends_as_partners_and_a_delete_a_hint(
    tmp_path: Path, watch: Callable[..., tuple[Watcher, queue.SimpleQueue[Event]]]
) -> None:
    root = tmp_path / "root"
    _write(root / "old" / "a.jpg", 10)
    _, q = watch([root])
    os.rename(root / "old", root / "new")
    events = _drain(q, lambda ev: str(root / "new") in _paths(ev))
    moves = {e.path: e.partner for e in events if isinstance(e, Hint) and e.folder}
    assert moves[str(root / "old")] == str(root / "new")
    assert moves[str(root / "new")] == str(root / "old")
    shutil.rmtree(root / "new")
    events = _drain(q, lambda ev: str(root / "new") in _paths(ev))
    assert any(isinstance(e, Hint) and e.folder and e.path == str(root / "new") for e in events)


@linux_only
def test_the_watch_limit_is_reported_with_the_folder_count(
    tmp_path: Path, watch: Callable[..., tuple[Watcher, queue.SimpleQueue[Event]]]
) -> None:
    root = tmp_path / "root"
    for i in range(4):
        (root / f"album{i}").mkdir(parents=True)
    w, q = watch([root], watch_limit=2)
    w.check()
    trouble = _drain(q, lambda ev: any(isinstance(e, Trouble) for e in ev))
    (t,) = [e for e in trouble if isinstance(e, Trouble)]
    assert t.reason == "watch-limit" and t.root == str(root)
    assert "5 folders under the roots" in t.message and "is 2" in t.message
    assert w.incomplete() == [str(root)]
    assert "watch limit reached" in w.summary()
    # A retry that still hits the limit stays degraded and does not repeat the message.
    assert w.retry(str(root)) is False
    w.check()
    assert w.incomplete() == [str(root)]
    with pytest.raises(queue.Empty):
        while True:
            e = q.get(timeout=0.3)
            assert not isinstance(e, Trouble), e


@linux_only
def test_a_subfolder_that_cannot_be_watched_later_is_noticed(
    tmp_path: Path, watch: Callable[..., tuple[Watcher, queue.SimpleQueue[Event]]]
) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    w, q = watch([root], watch_limit=2)  # exactly enough for root and a
    w.check()
    assert w.incomplete() == []
    (root / "b").mkdir()  # watchdog swallows the failure to watch this one
    _drain(q, lambda ev: str(root / "b") in _paths(ev))  # watchdog tried to watch b before reporting it
    w.check()
    events = _drain(q, lambda ev: any(isinstance(e, Trouble) for e in ev))
    assert [e.reason for e in events if isinstance(e, Trouble)] == ["watch-limit"]
    assert w.incomplete() == [str(root)]


@linux_only
def test_a_root_that_vanishes_and_returns_is_reported_and_watched_again(
    tmp_path: Path, watch: Callable[..., tuple[Watcher, queue.SimpleQueue[Event]]]
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    w, q = watch([root])
    shutil.rmtree(root)

    def vanished(ev: list[Event]) -> bool:
        w.check()
        return any(isinstance(e, Trouble) and e.reason == "root-vanished" for e in ev)

    _drain(q, vanished)
    assert "not present" in w.summary()
    root.mkdir()

    def returned(ev: list[Event]) -> bool:
        w.check()
        return any(isinstance(e, Trouble) and e.reason == "root-returned" for e in ev)

    _drain(q, returned)
    (root / "back.jpg").write_bytes(b"z")
    _drain(q, lambda ev: str(root / "back.jpg") in _paths(ev))


@linux_only
def test_a_kernel_queue_overflow_becomes_trouble(
    tmp_path: Path, watch: Callable[..., tuple[Watcher, queue.SimpleQueue[Event]]]
) -> None:
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent

    root = tmp_path / "root"
    root.mkdir()
    w, q = watch([root])
    observer = w._roots[str(root)].observer
    assert observer is not None
    # The kernel's IN_Q_OVERFLOW (wd -1), fed to the real inotify reader as it would arrive.
    observer._fd.handle_event(InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b""))  # type: ignore[attr-defined,arg-type]
    w.check()
    events = _drain(q, lambda ev: any(isinstance(e, Trouble) for e in ev))
    assert [e.reason for e in events if isinstance(e, Trouble)] == ["overflow"]


@linux_only
def test_a_polling_root_gives_hints_without_inotify(
    tmp_path: Path, watch: Callable[..., tuple[Watcher, queue.SimpleQueue[Event]]]
) -> None:
    root = tmp_path / "share"
    root.mkdir()
    w, q = watch([root], daemon=DaemonConfig(polling_roots=(str(root),), poll_interval=1.0))
    assert "polling" in w.summary()
    (root / "a.jpg").write_bytes(b"a")
    events = _drain(q, lambda ev: str(root / "a.jpg") in _paths(ev))
    assert all(not (isinstance(e, Hint) and e.writing) for e in events)  # no close-write here: no open-writer wait


def test_roots_no_longer_listed_stop_being_watched(
    tmp_path: Path, watch: Callable[..., tuple[Watcher, queue.SimpleQueue[Event]]]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    w, _ = watch([a])
    assert w.sync([str(a), str(b)]) == [str(b)]
    w.sync([str(b)])
    assert str(a) not in w.summary() and str(b) in w.summary()


def test_a_roots_own_watch_mode_wins_and_a_change_restarts_its_watch(
    tmp_path: Path, watch: Callable[..., tuple[Watcher, queue.SimpleQueue[Event]]]
) -> None:
    assert watch_mode("/mnt/nas/x", (), read_mounts(MOUNTS), "inotify")[0] == "inotify"
    assert watch_mode("/home/me/Pictures", (), read_mounts(MOUNTS), "poll")[0] == "polling"
    root = tmp_path / "r"
    root.mkdir()
    w, _ = watch([root])
    assert "(inotify)" in w.summary()
    w.sync([str(root)], {str(root): "poll"})
    assert "(polling)" in w.summary()


def test_a_single_photo_root_is_left_to_rescans(
    tmp_path: Path, watch: Callable[..., tuple[Watcher, queue.SimpleQueue[Event]]]
) -> None:
    photo = tmp_path / "one.jpg"
    photo.write_bytes(b"x")
    w, q = watch([photo])
    w.check()
    assert "single file" in w.summary() and w.incomplete() == []
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
