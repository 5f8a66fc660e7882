"""Jobs on disk: one folder per job, ``<config dir>/jobs/<id>/``, so that a crash, a killed
engine or a reboot loses no job and at most the steps since its last checkpoint.

A job folder holds, each file written atomically (``write_atomic``):

- ``request.json``: what the job computes (settings, photo size, start strokes, locks, cache key);
- ``image`` and ``mask``: the photo (and mask) bytes as uploaded, removed once the job ends;
- ``state.json``: state, times, iteration, loss, error (the ``JobStatus`` fields that change);
- ``checkpoint.pt``: the optimizer's ``LoopState``, removed once the job ends;
- ``result.json``: the strokes JSON (done, or cancelled with the best strokes so far).

This module only reads and writes files; ``jobs.JobQueue`` decides what goes in them and when.
A folder that cannot be read whole is reported by ``load`` as ``Damaged``, never raised.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

JOB_ID = re.compile(r"^[0-9a-f]{32}$")             # uuid4().hex: nothing else is ever a job folder
REQUEST, STATE, RESULT, CHECKPOINT, IMAGE, MASK = (
    "request.json", "state.json", "result.json", "checkpoint.pt", "image", "mask")


@dataclass
class Stored:
    """A job folder read back whole. ``image`` is None once the job ended (the photo is let go)."""

    id: str
    request: dict[str, Any]
    state: dict[str, Any]
    image: Optional[bytes]
    mask: Optional[bytes]
    result: Optional[dict[str, Any]]


@dataclass
class Damaged:
    """A job folder that cannot be read whole: why, and when it was last written (Unix s)."""

    id: str
    error: str
    mtime: float


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data`` all at once: a temporary file in the same folder, flushed to
    the disk, renamed over ``path``, then the folder flushed (so the rename itself survives a power
    cut). Readers see the old file or the new one, never a part; a failure (disk full) leaves the
    old file as it was and raises ``OSError``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    if os.name != "posix":                             # Windows cannot open a folder; NTFS journals renames
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


class JobStore:
    """The job folders under ``folder`` (created mode 0700: photos are the user's)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):                    # ids come from us, but a path is built from them
            raise ValueError(f"not a job id: {job_id!r}")
        return self.folder / job_id

    # --- writing ------------------------------------------------------------------------------
    def create(self, job_id: str, request: dict[str, Any], state: dict[str, Any], *, image: Optional[bytes] = None,
               mask: Optional[bytes] = None, result: Optional[dict[str, Any]] = None) -> None:
        """A new job folder (``image`` for a job still to run, ``result`` for one answered at once);
        ``state.json`` is written last, so a folder without it was never acknowledged. On failure
        (disk full) the folder is removed again and ``OSError`` raised."""
        folder = self.path(job_id)
        try:
            folder.mkdir(mode=0o700)
            for name, data in ((IMAGE, image), (MASK, mask)):
                if data is not None:
                    write_atomic(folder / name, data)
            if result is not None:
                write_atomic(folder / RESULT, _json_bytes(result))
            write_atomic(folder / REQUEST, _json_bytes(request))
            write_atomic(folder / STATE, _json_bytes(state))
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def write_state(self, job_id: str, state: dict[str, Any]) -> None:
        write_atomic(self.path(job_id) / STATE, _json_bytes(state))

    def write_checkpoint(self, job_id: str, data: bytes) -> None:
        write_atomic(self.path(job_id) / CHECKPOINT, data)

    def write_result(self, job_id: str, result: dict[str, Any]) -> None:
        write_atomic(self.path(job_id) / RESULT, _json_bytes(result))

    def ended(self, job_id: str) -> None:
        """The job will not run again: let go of its photo, mask and checkpoint."""
        for name in (IMAGE, MASK, CHECKPOINT):
            (self.path(job_id) / name).unlink(missing_ok=True)

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.path(job_id), ignore_errors=True)

    # --- reading ------------------------------------------------------------------------------
    def read_checkpoint(self, job_id: str) -> Optional[bytes]:
        try:
            return (self.path(job_id) / CHECKPOINT).read_bytes()
        except FileNotFoundError:
            return None

    def read_result(self, job_id: str) -> Optional[dict[str, Any]]:
        return _read_json(self.path(job_id) / RESULT, required=False)

    def size(self, job_id: str) -> int:
        """Bytes on disk of the job's files."""
        total = 0
        for entry in os.scandir(self.path(job_id)):
            try:
                total += entry.stat().st_size
            except OSError:
                pass
        return total

    def load(self) -> Iterator[Union[Stored, Damaged]]:
        """Every job folder, read back (temporary files of interrupted writes are removed)."""
        for entry in sorted(os.scandir(self.folder), key=lambda e: e.name):
            if not entry.is_dir() or not JOB_ID.match(entry.name):
                continue
            folder = Path(entry.path)
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
            try:
                yield self._read(entry.name, folder)
            except (OSError, ValueError) as exc:
                yield Damaged(entry.name, str(exc), _mtime(folder))

    def _read(self, job_id: str, folder: Path) -> Stored:
        state = _read_json(folder / STATE)
        request = _read_json(folder / REQUEST)
        assert state is not None and request is not None
        if state.get("state") not in ("queued", "running", "done", "failed", "cancelled"):
            raise ValueError(f"{STATE}: no job state in it")
        ended = state["state"] in ("done", "failed", "cancelled")
        image = None if ended else _read_bytes(folder / IMAGE)
        mask = None if ended or not request.get("mask") else _read_bytes(folder / MASK)
        result = _read_json(folder / RESULT, required=state["state"] == "done")
        return Stored(job_id, request, state, image, mask, result)


def _read_json(path: Path, required: bool = True) -> Optional[dict[str, Any]]:
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        if required:
            raise ValueError(f"{path.name} is missing") from None
        return None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path.name} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path.name} does not hold a JSON object")
    return data


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{path.name} is missing") from None


def _mtime(folder: Path) -> float:
    try:
        return folder.stat().st_mtime
    except OSError:
        return 0.0
