"""Builds a Hugging Face hub cache on disk, in the layout huggingface_hub reads offline:

    HF_HOME/hub/{models,datasets}--ORG--NAME/
        blobs/<sha256 of the content>
        snapshots/<commit>/<path in repo>  -> ../../blobs/<sha256>   (relative symlinks)
        refs/<branch or tag>               the commit, no newline
        trees/<commit>.json                optional: the repo's file listing (huggingface_hub's
                                           own tree cache), which lets it notice missing files

The real hub names LFS blobs by sha256 and other blobs by git sha1; the offline reader never
checks blob names, so sha256 for all keeps this short.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

# the file listing of a cached repo, in huggingface_hub's own format (written by its own code)
from huggingface_hub._tree_cache import TreeCacheEntry, write_tree_cache

# SystemChat-2.0 as published: ShareGPT lines with a `conversations` list of {from, value} turns
SYSTEMCHAT_FILE = "SystemChat_filtered_sharegpt.jsonl"


def repo_folder(hf_home: Path, kind: str, repo_id: str) -> Path:
    return Path(hf_home) / "hub" / f"{kind}s--{repo_id.replace('/', '--')}"


def add_commit(hf_home: Path, repo_id: str, files: dict[str, bytes], *, kind: str = "model",
               refs: tuple[str, ...] = ("main",), listed_only: tuple[str, ...] = ()) -> str:
    """Store one commit of `repo_id` holding `files` and point `refs` at it; returns the commit.
    `listed_only`: paths the repo listing names but the snapshot lacks (an incomplete download)."""
    storage = repo_folder(hf_home, kind, repo_id)
    digest = hashlib.sha1(repo_id.encode())
    for rel in sorted(files):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(files[rel]).digest())
    commit = digest.hexdigest()
    (storage / "blobs").mkdir(parents=True, exist_ok=True)
    for rel, data in files.items():
        blob = storage / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        link = storage / "snapshots" / commit / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(os.path.relpath(blob, link.parent))
    (storage / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (storage / "refs" / ref).write_text(commit)
    if listed_only:
        entries = {rel: TreeCacheEntry(size=len(data), blob_id=hashlib.sha1(data).hexdigest())
                   for rel, data in files.items()}
        entries.update({rel: TreeCacheEntry(size=1, blob_id="0" * 40) for rel in listed_only})
        write_tree_cache(str(storage), commit, entries)
    return commit


def folder_files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def systemchat_lines(n: int, seed: int = 0) -> bytes:
    lines = []
    for i in range(n):
        lines.append({"conversations": [
            {"from": "system", "value": f"You are a concise assistant. Answer in at most {20 + i} words."},
            {"from": "human", "value": f"Name one fact about the number {seed * 100 + i}."},
            {"from": "gpt", "value": f"The number {seed * 100 + i} is {'even' if i % 2 == 0 else 'odd'}."},
        ]})
    return "".join(json.dumps(rec) + "\n" for rec in lines).encode()
