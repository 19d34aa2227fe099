"""Output folders written whole or not at all: temp sibling, atomic swap, leftovers cleaned.

A converter writes into a hidden sibling `.NAME.tmp-XXXXXXXX` and swaps it into place at the end.
The swap is one `renameat2(RENAME_EXCHANGE)` where the kernel and filesystem offer it, so at
every instant NAME is either the old complete folder or the new one. Elsewhere it falls back to
two renames through `.NAME.old-XXXXXXXX`; a crash between them leaves the old folder there, and
the next write to NAME (`clean_leftovers`) puts it back before anything else. A write holds
NAME's one-writer lock (`writing`) throughout, so a second write to NAME is refused at once instead
of taking the first one's temp folder for a leftover and deleting it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from siamgpt_jax.errors import UserError

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt",
    "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
)
# What an HF export may hold; anything else in a folder is the user's, and --overwrite keeps off it.
HF_EXPORT_FILES = frozenset({"config.json", "generation_config.json", INDEX_FILE, *TOKENIZER_FILES})

_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _sibling(target: Path, kind: str) -> Path:
    return target.parent / f".{target.name}.{kind}-{uuid.uuid4().hex[:8]}"


def _leftovers(target: Path, kind: str) -> list[Path]:
    return sorted(target.parent.glob(f".{glob_escape(target.name)}.{kind}-*")) if target.parent.is_dir() else []


def glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def foreign_files(target: Path) -> list[str]:
    """Entries of `target` that an HF export does not write."""
    return sorted(p.name + ("/" if p.is_dir() else "") for p in target.iterdir()
                  if not (p.is_file() and (p.name in HF_EXPORT_FILES or p.suffix == ".safetensors")))


def check_target(target: str | Path, *, overwrite: bool, force: bool = False, hf_export: bool = True) -> None:
    """Refuse before any work: an existing non-empty target needs --overwrite, and a folder with
    files an HF export does not write needs --force too (they would be deleted)."""
    target = Path(target)
    if target.exists() and not target.is_dir():
        raise UserError(f"{target}: exists and is not a folder")
    if not target.exists() or not any(target.iterdir()):
        return
    if not overwrite:
        if not hf_export:  # import-hf never replaces a checkpoint
            raise UserError(f"{target}: exists and is not empty; pick a new folder for the checkpoint")
        raise UserError(f"{target}: exists and is not empty (pass --overwrite to replace it)")
    foreign = foreign_files(target) if hf_export else []
    if foreign and not force:
        shown = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
        raise UserError(f"{target}: holds files that are not part of an HF export ({shown}); --overwrite would "
                        f"delete them: move them away, or pass --force as well")


def clean_leftovers(target: Path, *, log=print) -> None:
    """Undo what an interrupted write left beside `target`: restore a folder moved aside by an
    interrupted fallback swap, then delete temp folders of killed writes."""
    olds = _leftovers(target, "old")
    if olds and not target.exists():
        os.rename(olds[-1], target)
        log(f"restored {target} from {olds[-1].name}, left by an interrupted export")
        olds = olds[:-1]
    for p in olds + _leftovers(target, "tmp"):
        shutil.rmtree(p, ignore_errors=True)
        log(f"removed {p.name}, left by an interrupted export")


@contextlib.contextmanager
def writing(target: Path):
    """Hold `target`'s one-writer lock for the whole write: an flock on `.NAME.lock` beside it,
    removed again at the end. UserError at once when another process holds it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.lock"
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"{target}: another export or import into it is running (it holds {lock.name}); "
                            f"wait for it to finish, or write to another folder") from None
        try:  # the holder before us may have removed the file after we opened it: lock the one there now
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)  # while still holding it: the next writer locks a new file
        os.close(fd)


@contextlib.contextmanager
def replacing(target: Path, recheck: Callable[[], None]):
    """Write `target` whole or not at all: under its one-writer lock, undo what interrupted writes
    left, yield a fresh temp sibling to fill, then `recheck()` (nothing appeared in `target`
    meanwhile) and swap it into place. Any failure removes the temp folder and is raised."""
    with writing(target):
        clean_leftovers(target)
        tmp = new_temp(target)
        try:
            yield tmp
            recheck()
            swap_into_place(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def new_temp(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(target, "tmp")
    tmp.mkdir()
    return tmp


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the kernel or filesystem cannot."""
    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not offered here
        return False
    raise OSError(err, os.strerror(err), str(a))


def swap_into_place(tmp: Path, target: Path) -> None:
    """Make `tmp` (complete) the folder `target`; the old `target`, if any, is deleted after."""
    if not target.exists():
        os.rename(tmp, target)
        return
    if _exchange(tmp, target):
        shutil.rmtree(tmp)  # now the old folder; a crash here leaves a leftover, not a gap
        return
    old = _sibling(target, "old")
    os.rename(target, old)
    os.rename(tmp, target)
    shutil.rmtree(old)
