"""export-hf's output folder: refused before any reading, leftovers cleaned, swapped atomically,
bf16 by default, tokenizer and chat template included, what was exported said."""

import json
import os
import shutil

import numpy as np
import pytest
import safetensors.numpy as stn

from siamgpt_jax.cli import main
from siamgpt_jax.convert import folders, params_ckpt
from siamgpt_jax.testing import TINY_HF as TINY, make_hf_model, save_hf_model
from siamgpt_jax.errors import UserError


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A params checkpoint imported from a tiny HF folder that has no tokenizer."""
    root = tmp_path_factory.mktemp("src")
    save_hf_model(make_hf_model(seed=10, **TINY["gqa2_untied_hd"]), root / "hf")
    assert main(["import-hf", str(root / "hf"), str(root / "ckpt"), "--no-progress"]) == 0
    (root / "tok").mkdir()
    (root / "tok" / "tokenizer_config.json").write_text("{}")
    return root / "ckpt"


def _export(ckpt, out, *flags, tokenizer=True):
    tok = ["--tokenizer-dir", str(ckpt.parent / "tok")] if tokenizer else []  # quick: these tests are about folders
    # --debug: main raises the user's error instead of printing its one line, so tests can match it
    return main(["--debug", "export-hf", str(ckpt), str(out), "--no-progress", "--max-shard-size", "20KB", *tok, *flags])


def _weights(folder):
    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(stn.load_file(str(f)))
    return out


def test_default_export_is_bf16_with_the_builtin_tokenizer_that_round_trips_thai(tmp_path, ckpt, capsys):
    import transformers

    from siamgpt_jax.loader.chat import CHAT_TEMPLATE
    from siamgpt_jax.loader.tokenizer import load_tokenizer

    assert _export(ckpt, tmp_path / "out", tokenizer=False) == 0
    assert "tokenizer: built-in Qwen3" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert {str(t.dtype) for t in _weights(tmp_path / "out").values()} == {"bfloat16"}
    tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "out")
    text = "สวัสดีครับ วันนี้อากาศดีมาก ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ 123"
    assert tok(text, add_special_tokens=False)["input_ids"] == load_tokenizer(None).encode(text)
    assert tok.chat_template == CHAT_TEMPLATE
    assert _export(ckpt, tmp_path / "f32", "--dtype", "float32") == 0
    assert {str(t.dtype) for t in _weights(tmp_path / "f32").values()} == {"float32"}

    # import-hf keeps the HF folder's tokenizer inside the checkpoint; export then writes that one
    shutil.copytree(ckpt, tmp_path / "ckpt")
    load_tokenizer(None).save(tmp_path / "ckpt" / "tokenizer")
    assert _export(tmp_path / "ckpt", tmp_path / "out2", tokenizer=False) == 0
    assert f"tokenizer: {tmp_path / 'ckpt' / 'tokenizer'}" in capsys.readouterr().out
    tok2 = transformers.AutoTokenizer.from_pretrained(tmp_path / "out2")
    assert tok2(text, add_special_tokens=False)["input_ids"] == load_tokenizer(None).encode(text)


def test_import_refuses_an_existing_folder_without_naming_a_flag_it_lacks(tmp_path, ckpt):
    with pytest.raises(UserError, match=r"ckpt: exists and is not empty; pick a new folder"):
        main(["--debug", "import-hf", str(ckpt.parent / "hf"), str(ckpt), "--no-progress"])


def test_existing_target_fails_before_the_checkpoint_is_read_and_names_the_flag(tmp_path, ckpt, monkeypatch):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "config.json").write_text("{}")

    def never(*a, **k):
        raise AssertionError("the checkpoint was opened before the target was checked")

    monkeypatch.setattr(params_ckpt, "open_params", never)
    with pytest.raises(UserError, match=r"out: exists and is not empty \(pass --overwrite to replace it\)"):
        _export(ckpt, tmp_path / "out")
    monkeypatch.undo()
    assert _export(ckpt, tmp_path / "out", "--overwrite") == 0
    assert (tmp_path / "out" / "model.safetensors.index.json").is_file()


def test_overwrite_refuses_a_folder_with_other_files_and_names_them(tmp_path, ckpt):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "data").mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(UserError, match=r"holds files that are not part of an HF export \(data/, notes\.txt\).*--force"):
        _export(ckpt, out, "--overwrite")
    assert (out / "notes.txt").read_text() == "mine"
    assert _export(ckpt, out, "--overwrite", "--force") == 0
    assert not (out / "notes.txt").exists() and (out / "model.safetensors.index.json").is_file()


def test_a_killed_exports_temp_folders_are_removed_by_the_next_export(tmp_path, ckpt, capsys):
    for k in range(2):  # what kill -9 during an export leaves behind
        stale = tmp_path / f".out.tmp-dead000{k}"
        stale.mkdir()
        (stale / "model-00001-of-00009.safetensors").write_bytes(b"x" * 1000)
    (tmp_path / ".other.tmp-dead0000").mkdir()  # another target's: not ours to remove
    assert _export(ckpt, tmp_path / "out") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp-dead0000", "out"]
    assert "removed .out.tmp-dead0000, left by an interrupted export" in capsys.readouterr().out


def test_the_swap_is_one_atomic_exchange_and_a_crash_after_it_leaves_the_new_folder(tmp_path, ckpt, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    assert folders._exchange(a, b)  # renameat2(RENAME_EXCHANGE) works on this filesystem
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"

    out = tmp_path / "out"
    assert _export(ckpt, out) == 0
    old = _weights(out)

    def crash(path, *a, **k):
        raise KeyboardInterrupt  # killed right after the exchange, before the old copy is deleted

    monkeypatch.setattr(folders.shutil, "rmtree", crash)
    with pytest.raises(KeyboardInterrupt):
        _export(ckpt, out, "--overwrite", "--dtype", "float32")
    monkeypatch.undo()
    new = _weights(out)  # the target is the new, complete export
    assert {str(t.dtype) for t in new.values()} == {"float32"} and sorted(new) == sorted(old)
    assert _export(ckpt, out, "--overwrite") == 0  # ... and the old copy beside it is cleaned up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "out"]


def test_without_exchange_a_crash_between_the_renames_is_undone_by_the_next_export(tmp_path, ckpt, monkeypatch):
    out = tmp_path / "out"
    assert _export(ckpt, out) == 0
    before = _weights(out)
    monkeypatch.setattr(folders, "_exchange", lambda a, b: False)  # e.g. a filesystem without RENAME_EXCHANGE
    real_rename, calls = os.rename, []

    def rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # between moving the old folder aside and moving the new one in
        real_rename(src, dst)

    monkeypatch.setattr(folders.os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        _export(ckpt, out, "--overwrite")
    monkeypatch.undo()
    moved = list(tmp_path.glob(".out.old-*"))
    assert not out.exists() and len(moved) == 1  # the old export is whole, beside the target
    assert all(np.array_equal(v, _weights(moved[0])[k]) for k, v in before.items())
    with pytest.raises(UserError, match="pass --overwrite"):  # it is put back first, so it is protected
        _export(ckpt, out)
    assert out.is_dir() and not list(tmp_path.glob(".out.*"))
    assert all(np.array_equal(v, _weights(out)[k]) for k, v in before.items())


def test_a_second_write_to_the_same_folder_is_refused_while_the_first_runs(tmp_path):
    """Two exports into one folder: the second stops at once, and the first one's temp folder (which
    the second would otherwise have removed as a leftover) stays; the lock goes with the writer."""
    import fcntl

    out = tmp_path / "out"
    with folders.writing(out):  # the first write, mid-way
        live = folders.new_temp(out)
        # another process tries: flock is per open file, so a second open here is a stranger's
        fd = os.open(tmp_path / ".out.lock", os.O_RDWR)
        with pytest.raises(BlockingIOError):
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.close(fd)
        with pytest.raises(UserError, match=r"out: another export or import into it is running"):
            with folders.writing(out):
                pass
        assert live.is_dir()
    assert not (tmp_path / ".out.lock").exists()  # removed with the lock: nothing left beside the folder
    with folders.writing(out):  # and the next writer gets it
        pass
