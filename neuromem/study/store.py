"""The results store of an ablation run: SQLite in the output folder, one row per finished cell.

A row is written in one transaction only after the cell's artifacts are in
place (written to a staging folder `cells/.<cell_id>.<random>/` and renamed), so
a crash or `kill -9` loses at most the cells that were still running, and a
re-run skips every cell that has an ok row. A killed run's staging folders are
removed by the next run; readers (engram, export) never look at dot-folders.

Several processes may share one output folder: a cell is trained only by the
process holding its claim, an flock on `.claims/<cell_id>.lock` (released by
the kernel when the process dies, so a killed run's claims are simply taken
over), and an ok row is never replaced by a failed one.
"""

from __future__ import annotations

import errno
import fcntl
import io
import json
import os
import re
import shutil
import sqlite3
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from neuromem.errors import NeuromemError
from neuromem.train.config import CellConfig, config_problems, stored_digest, unknown_keys

SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    cell_id TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    status TEXT NOT NULL,
    finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS run (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
STORE_NAME = "results.sqlite"
CLAIMS_DIR = ".claims"

# an ok row is only ever replaced by another ok row
UPSERT = """
INSERT INTO cells VALUES (?, ?, ?, ?, ?)
ON CONFLICT(cell_id) DO UPDATE SET config = excluded.config, metrics = excluded.metrics,
    status = excluded.status, finished_at = excluded.finished_at
WHERE excluded.status = 'ok' OR cells.status != 'ok'
"""

_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return _UMASK


def file_mode() -> int:
    """The mode an ordinary new file gets (mkstemp's 0600 would hide results from the user's group)."""
    return 0o666 & ~_umask()


def dir_mode() -> int:
    return 0o777 & ~_umask()


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or " ".join(str(error).split()) or type(error).__name__


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Replace `path` by `payload` all at once; on failure (disk full, read-only) the old file stays
    and no temporary file is left."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as error:
        raise NeuromemError(f"cannot write {path} ({_reason(error)}); choose a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fchmod(handle.fileno(), file_mode())
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise NeuromemError(f"cannot write {path} ({_reason(error)}); the previous version, if any, is kept") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_output(path: Path, flag: str = "--out") -> Iterator[Path]:
    """Yield a temporary path in `path`'s folder to write to; on success it replaces `path` at once (rename).
    On any failure, and on SIGINT or SIGTERM while writing, the temporary file is removed and `path` keeps
    its previous content (an interrupt leaves as KeyboardInterrupt: "interrupted", exit 130)."""
    import signal
    import threading

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
    except OSError as error:
        raise NeuromemError(f"{flag} {path}: cannot write there ({_reason(error)}); choose a writable path") from None
    tmp = Path(name)
    interrupted: list[int] = []
    previous: dict[int, Any] = {}

    def on_signal(signum, frame):
        interrupted.append(signum)
        handler = previous.get(signum)
        if callable(handler):  # the command line's own handler records which signal, then raises
            handler(signum, frame)
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        try:
            yield tmp
            os.chmod(tmp, file_mode())
            os.replace(tmp, path)
        except BaseException as error:
            tmp.unlink(missing_ok=True)
            if interrupted and not isinstance(error, KeyboardInterrupt):  # h5py turns an interrupt into its own error
                raise KeyboardInterrupt from None
            if isinstance(error, OSError):
                raise NeuromemError(f"{flag} {path}: writing failed ({_reason(error)}); the previous file, if any, "
                                    "is kept; free space or choose another path") from None
            raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


# `cells/.<cell_id>.<mkdtemp suffix>` (staging) and `cells/.<cell_id>.replaced-<8 hex>` (an earlier copy moved
# aside): the only folders neuromem ever removes; a cell id ends in `-s<seed>-<8 hex digits of its digest>`
_STAGING = re.compile(r"^\.(?P<cell>[^/\\.][^/\\]*-s\d+-[0-9a-f]{8})\.(?:replaced-[0-9a-f]{8}|[a-z0-9_]{8})$")


def staging_cell_id(name: str) -> str | None:
    """The cell a `cells/.<cell_id>.<suffix>` staging (or replaced) folder belongs to; None for other names
    (another tool's dot-folders are never taken for neuromem's)."""
    match = _STAGING.match(name)
    return match.group("cell") if match else None


def check_out_is_ours(out_dir: Path, flag: str = "--out") -> None:
    """Before a run writes into `out_dir`: refuse a folder that holds files but no neuromem results store
    (another tool's folder: its report.md, results.csv or dot-folders would be overwritten or removed)."""
    out_dir = Path(out_dir)
    try:
        if not out_dir.is_dir() or (out_dir / STORE_NAME).exists():
            return
        entries = sorted(p.name for p in out_dir.iterdir() if not p.name.startswith("."))  # .DS_Store, .gitkeep...
    except OSError:
        return  # unreadable, or a name too long to look up: the writability check names it
    if entries:
        shown = ", ".join(entries[:4]) + (", ..." if len(entries) > 4 else "")
        raise NeuromemError(f"{flag} {out_dir}: holds files neuromem did not write ({shown}) and no {STORE_NAME}; "
                            "choose a new or empty folder (or the --out of an earlier neuromem run to resume it)")


def finished_cell_dirs(run_dir: Path) -> list[Path]:
    """The `cells/<cell_id>/` folders of finished cells, sorted: never a dot-folder (staging, claims), and
    where the run has a results store, only cells whose row says ok. Reads only; creates nothing."""
    cells_dir = Path(run_dir) / "cells"
    if not cells_dir.is_dir():
        return []
    dirs = sorted(p for p in cells_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    ok = _ok_ids_read_only(Path(run_dir) / STORE_NAME)
    return dirs if ok is None else [p for p in dirs if p.name in ok]


def _ok_ids_read_only(path: Path) -> set[str] | None:
    """Cell ids with an ok row; None when there is no store or it cannot be opened read-only here."""
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.OperationalError:
        return None
    try:
        return {row[0] for row in db.execute("SELECT cell_id FROM cells WHERE status = 'ok'")}
    except sqlite3.OperationalError as error:
        if "no such table" in str(error) or "unable to open" in str(error) or "readonly" in str(error):
            return None
        raise _unreadable(path, error) from None
    except sqlite3.DatabaseError as error:
        raise _unreadable(path, error) from None
    finally:
        db.close()


def _unreadable(path: Path, error: BaseException) -> NeuromemError:
    text = " ".join(str(error).split())
    if isinstance(error, sqlite3.OperationalError) and "locked" in text:
        return NeuromemError(f"{path}: the results store stayed locked by another process for 30 s ({text}); "
                             "wait for the other run or choose another --out")
    if isinstance(error, sqlite3.OperationalError) and ("full" in text or "readonly" in text or "I/O" in text):
        return NeuromemError(f"{path}: cannot write the results store ({text}); free space or choose another --out, "
                             "then re-run the same command to resume")
    return NeuromemError(f"{path}: not a readable results store ({text}); move it away "
                         f"(e.g. mv {path} {path}.broken) to start a new store there, or choose another --out")


def plain_cell_id(cell_id: Any) -> bool:
    """A name for one folder under cells/: no path separator, no leading dot, nothing but printable text."""
    return (isinstance(cell_id, str) and bool(cell_id) and "/" not in cell_id and "\\" not in cell_id
            and not cell_id.startswith(".") and cell_id.isprintable())


def _checked_row(cell_id, config_text, metrics_text, status, finished_at) -> tuple[dict | None, str | None]:
    if not plain_cell_id(cell_id):
        return None, f"cell id {cell_id!r} is not a plain name (no '/', no leading '.'); valid: <modality>-<memory>-s<seed>-<digest>"
    try:
        config, metrics = json.loads(config_text), json.loads(metrics_text)
    except (TypeError, ValueError, RecursionError) as error:
        return None, f"its config or metrics are not JSON ({type(error).__name__})"
    problems = config_problems(config)
    if problems:
        return None, "; ".join(problems)
    if not isinstance(metrics, dict):
        return None, f"its metrics are a {type(metrics).__name__}; valid: an object"
    if not cell_id.endswith("-" + stored_digest(config)[:8]):
        return None, (f"its cell id does not end in its config's digest ({stored_digest(config)[:8]}): the row was "
                      "edited or belongs to another cell")
    return {"cell_id": cell_id, "config": config, "metrics": metrics, "status": status, "finished_at": finished_at}, None


def check_foreign_store(path: Path) -> None:
    """Before a read-only command opens `path` for writing: it must be a neuromem results store (a `cells` table
    with neuromem's columns); another tool's SQLite file is refused and never changed."""
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as error:
        raise _unreadable(Path(path), error) from None
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(cells)")]
    except sqlite3.DatabaseError as error:
        raise _unreadable(Path(path), error) from None
    finally:
        db.close()
    expected = ["cell_id", "config", "metrics", "status", "finished_at"]
    if columns != expected:
        found = f"its cells table has columns {', '.join(columns)}" if columns else "it has no cells table"
        raise NeuromemError(f"{path}: not a neuromem results store ({found}; valid: {', '.join(expected)}); "
                            "it was left unchanged; give the --out folder of a `neuromem ablate` run")


class CellClaim:
    """This process's exclusive right to train and save one cell (an flock, released on close or death)."""

    def __init__(self, key: tuple[str, str], fd: int) -> None:
        self.key, self.fd = key, fd

    def release(self) -> None:
        if self.fd >= 0:
            _HELD.pop(self.key, None)
            os.close(self.fd)  # closing drops the flock
            self.fd = -1


_HELD: dict[tuple[str, str], CellClaim] = {}  # claims this process holds: flock is per open file, not per process


class ResultStore:
    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / STORE_NAME
        self.opened_at = time.time()  # rows finished after this were written by another run
        self.rejected: dict[str, str] = {}  # rows() fills these
        self.notes: list[str] = []
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise NeuromemError(f"--out {self.out_dir}: cannot write there ({_reason(error)}); choose a writable folder") from None
        for attempt in range(100):  # two runs creating one store at once: switching to WAL may be refused
            try:
                with self._db(wal=True) as db:
                    db.executescript(SCHEMA)
                break
            except NeuromemError:
                if attempt == 99 or not self._busy:
                    raise
                time.sleep(0.1)

    @contextmanager
    def _db(self, wal: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection that commits on success and always closes; a damaged store is one line.
        WAL mode is set once, when the store is opened: it stays with the file."""
        self._busy = False
        try:
            db = sqlite3.connect(self.path, timeout=30)
            try:
                if wal:
                    db.execute("PRAGMA journal_mode=WAL")
                with db:
                    yield db
            finally:
                db.close()
        except sqlite3.DatabaseError as error:
            self._busy = isinstance(error, sqlite3.OperationalError) and "locked" in str(error)
            raise _unreadable(self.path, error) from None

    # run-level facts (data source, data root)
    def set_run_info(self, **info: str) -> None:
        """Record run-level facts; a value that differs from the stored one is added to it (`a; b`), so
        cells computed on an earlier data root are never relabelled with a later one."""
        with self._db() as db:
            stored = dict(db.execute("SELECT key, value FROM run").fetchall())
            merged = {}
            for key, value in info.items():
                values = [v for v in stored.get(key, "").split("; ") if v]
                if str(value) not in values:
                    values.append(str(value))
                merged[key] = "; ".join(values)
            db.executemany("INSERT OR REPLACE INTO run VALUES (?, ?)", list(merged.items()))

    def run_info(self) -> dict[str, str]:
        with self._db() as db:
            return dict(db.execute("SELECT key, value FROM run").fetchall())

    def finished_ids(self) -> set[str]:
        with self._db() as db:
            return {row[0] for row in db.execute("SELECT cell_id FROM cells WHERE status = 'ok'")}

    def finished_since(self, cell_id: str, since: float) -> bool:
        """Whether an ok row for `cell_id` was written after `since` (by another run, if not by us)."""
        with self._db() as db:
            row = db.execute("SELECT finished_at FROM cells WHERE cell_id = ? AND status = 'ok'", (cell_id,)).fetchone()
        return row is not None and row[0] > since

    def rows(self) -> list[dict[str, Any]]:
        """Every row that holds together (`rejected`: the others, cell id -> why; `notes`: what was tolerated).
        A row's cell id must be a plain name ending in its config's digest: it names a folder under cells/."""
        with self._db() as db:
            rows = db.execute("SELECT cell_id, config, metrics, status, finished_at FROM cells ORDER BY cell_id").fetchall()
        self.rejected, self.notes, good = {}, [], []
        unknown: set[str] = set()
        for cell_id, config_text, metrics_text, status, finished_at in rows:
            row, why = _checked_row(cell_id, config_text, metrics_text, status, finished_at)
            if why is not None:
                self.rejected[str(cell_id)] = why
                continue
            unknown.update(unknown_keys(row["config"]))
            good.append(row)
        if unknown:
            self.notes.append(f"config keys this version does not know were ignored ({', '.join(sorted(unknown))}): "
                              "the store was written by a newer neuromem?")
        odd = sorted({str(row["status"]) for row in good} - {"ok", "failed"})
        if odd:
            self.notes.append(f"status {', '.join(map(repr, odd))} is not one neuromem writes (valid: ok, failed): those "
                              "rows are counted as failed cells")
        return good

    def cell_dir(self, cell_id: str) -> Path:
        return self.out_dir / "cells" / cell_id

    # claims: one process per cell at a time
    def claim(self, cell_id: str, wait: bool = False) -> CellClaim | None:
        """Take the cell's claim (waiting for it with `wait`); None if another live process holds it.
        A claim already held by this process is handed out again."""
        key = (str(self.out_dir.resolve()), cell_id)
        if key in _HELD:
            return _HELD[key]
        claims = self.out_dir / CLAIMS_DIR
        try:
            claims.mkdir(exist_ok=True)
            fd = os.open(claims / f"{cell_id}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise NeuromemError(f"--out {self.out_dir}: cannot write its claims folder {claims} ({_reason(error)}); "
                                f"{'move that file away' if claims.exists() and not claims.is_dir() else 'choose a writable folder'}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        claim = _HELD[key] = CellClaim(key, fd)
        return claim

    def claim_owner(self, cell_id: str) -> str:
        """The process id written by the claim's holder ('?' if unknown)."""
        try:
            return (self.out_dir / CLAIMS_DIR / f"{cell_id}.lock").read_text().strip() or "?"
        except OSError:
            return "?"

    @contextmanager
    def _holding(self, cell_id: str) -> Iterator[None]:
        key = (str(self.out_dir.resolve()), cell_id)
        if key in _HELD:
            yield
            return
        claim = self.claim(cell_id, wait=True)
        try:
            yield
        finally:
            claim.release()

    def remove_orphans(self) -> list[Path]:
        """Remove staging folders left by killed runs (those of cells no live process is saving)."""
        cells_dir = self.out_dir / "cells"
        removed = []
        if not cells_dir.is_dir():
            return removed
        for entry in sorted(cells_dir.iterdir()):
            cell_id = staging_cell_id(entry.name)
            if cell_id is None or not entry.is_dir():
                continue
            if entry.is_symlink():  # never followed: the link itself goes
                entry.unlink(missing_ok=True)
                removed.append(entry)
                continue
            claim = self.claim(cell_id, wait=False)
            if claim is None:
                continue  # another run is saving this cell right now
            try:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
            finally:
                claim.release()
        return removed

    def record(
        self,
        config: CellConfig,
        metrics: dict[str, Any],
        status: str = "ok",
        representations: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        """Write the cell's artifacts atomically, then its row (under the cell's claim)."""
        with self._holding(config.cell_id):
            if status == "ok":
                self._write_artifacts(config, metrics, representations or {}, state or {})
            with self._db() as db:
                db.execute(UPSERT, (config.cell_id, json.dumps(config.to_dict(), sort_keys=True), json.dumps(metrics),
                                    status, time.time()))

    def update_metrics(self, config: CellConfig, metrics: dict[str, Any]) -> None:
        """Replace a finished cell's config and metrics (re-pricing: same trained cell, same id) in its
        row and its cell.json; the trained artifacts stay as they are."""
        with self._holding(config.cell_id):
            cell_json = self.cell_dir(config.cell_id) / "cell.json"
            if cell_json.is_file():
                atomic_write_text(cell_json, json.dumps({"config": config.to_dict(), "metrics": metrics}, indent=2))
            with self._db() as db:
                db.execute("UPDATE cells SET config = ?, metrics = ? WHERE cell_id = ?",
                           (json.dumps(config.to_dict(), sort_keys=True), json.dumps(metrics), config.cell_id))

    def _write_artifacts(self, config, metrics, representations, state) -> None:
        import numpy as np
        import torch

        final = self.cell_dir(config.cell_id)
        staging: Path | None = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{config.cell_id}."))
            os.chmod(staging, dir_mode())
            (staging / "cell.json").write_text(json.dumps({"config": config.to_dict(), "metrics": metrics}, indent=2))
            buffer = io.BytesIO()
            np.savez(buffer, **representations)
            (staging / "representations.npz").write_bytes(buffer.getvalue())
            torch.save({"config": config.to_dict(), "state_dict": state}, staging / "model.pt")
            replaced = None
            if final.exists():  # an earlier attempt's complete folder (no row, or re-trained): moved aside first
                replaced = final.with_name(f".{config.cell_id}.replaced-{uuid.uuid4().hex[:8]}")
                os.replace(final, replaced)
            os.replace(staging, final)
            staging = None
            if replaced is not None:
                if replaced.is_symlink():  # a link planted in cells/: the link goes, never what it points to
                    replaced.unlink(missing_ok=True)
                else:
                    shutil.rmtree(replaced, ignore_errors=True)
        except (OSError, RuntimeError) as error:  # torch.save reports a full disk as a RuntimeError
            reason = _reason(error) if isinstance(error, OSError) else f"torch.save failed: {_reason(error)[:160]}; is the disk full?"
            raise NeuromemError(
                f"cannot save cell {config.cell_id} in {final.parent} ({reason}); nothing of it was kept: "
                "free space (or choose another --out) and re-run the same command to resume"
            ) from None
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)


def read_checkpoint_file(path: str | Path) -> Any:
    """A model.pt as `ResultStore` writes it (or `export.model.save_checkpoint`), read with torch.load
    weights_only=True: tensors and plain containers only, so a crafted file cannot run code."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many kinds for a damaged file
        text = " ".join(str(err).split())
        found = re.search(r"unsupported GLOBAL ([\w.]+)|Unsupported global: GLOBAL ([\w.]+)", text, re.IGNORECASE)
        if "Weights only load failed" in text and found:
            what = f" ({found.group(1) or found.group(2)})"
            raise NeuromemError(f"{path}: refused: the file asks to load Python objects{what}, not only weights; "
                                "neuromem reads checkpoints it wrote (tensors and plain values) and never runs code from one") from None
        raise NeuromemError(f"{path}: cannot read checkpoint ({type(err).__name__}); valid: a model.pt neuromem wrote "
                            "(cells/<cell_id>/model.pt of an ablate run), complete; a NIR graph goes to `neuromem import`") from None
