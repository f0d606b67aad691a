"""The photoindex home is private to its owner: the folder is 0700, what photoindex creates in it 0600.

The catalog holds every photo's path, camera and GPS data and its vector; the locks decide who
writes. Another local user must not read them nor take a lock (docs/privacy.md). A home created by
photoindex is 0700 from the start; an existing one that others can enter is tightened once, with a
notice. Files get 0600 through the umask the CLI sets for its process (`cli.main`) and the
explicit modes of the lock files.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # `cli.main` imports UMASK from here first: nothing more at import (cli/served.py)
if TYPE_CHECKING:
    from pathlib import Path

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600
UMASK = 0o077  # what the CLI and the daemon create: 0600 files, 0700 folders


def make_private_folder(path: Path) -> None:
    """Create `path` (and missing parents) with the leaf 0700, or tighten it when others can enter it.

    Tightening happens only to a folder this user owns, and says so once (the next open finds it private).
    """
    import stat
    from pathlib import Path

    path = Path(path)
    try:
        path.mkdir(mode=PRIVATE_FOLDER, parents=True)
        os.chmod(path, PRIVATE_FOLDER)  # mkdir's mode passes through the umask
        return
    except FileExistsError:
        pass
    try:
        st = os.stat(path)
    except OSError:
        return  # not there after all (or unreadable): the caller's own open reports it
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        return
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return
    import logging

    log = logging.getLogger(__name__)
    try:
        os.chmod(path, mode & ~0o077)
    except OSError as exc:
        log.warning("%s is open to other users (mode %04o) and cannot be made private: %s", path, mode, exc)
        return
    log.warning(
        "%s was open to other users (mode %04o); made it private (%04o): it holds your photos' "
        "places, camera data and the writer lock",
        path,
        mode,
        mode & ~0o077,
    )
