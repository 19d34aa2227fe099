"""Hub ids resolved through a real huggingface_hub cache built on disk (HF_HUB_OFFLINE=1), and the
one-line error of every failure, each triggered through huggingface_hub itself where it can be:
offline with nothing cached, an unknown revision, files missing from a cached snapshot, a bad id
(offline); a wrong id, a gated repo, an unknown revision and a missing file as the Hub reports
them (a local stand-in for its HTTP API). Only OfflineModeIsEnabled, which snapshot_download
handles itself, is checked through the mapping function alone."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from siamgpt_jax import hub
from siamgpt_jax.errors import UserError
from tests.hub.cache import SYSTEMCHAT_FILE, add_commit
from tests.hub.conftest import MODEL, SYSTEMCHAT, SYSTEMCHAT_RECORDS, VERIFIED
from tests.hub.fake_hub import FakeHub

# ---- specs --------------------------------------------------------------------------------------


def test_spec_syntax():
    p = hub.parse_spec
    assert p("Qwen/Qwen3-32B", "model") == hub.HubSpec("model", "Qwen/Qwen3-32B")
    assert p("Qwen/Qwen3-0.6B@v1.0", "model").revision == "v1.0"
    assert p("org/m@refs/pr/3", "model").revision == "refs/pr/3"
    assert p("hf://org/m", "model").prefixed
    d = p("hf://datasets/org/d@refs/convert/parquet/default/train/*.parquet:train", "dataset")
    assert (d.repo_id, d.revision, d.glob, d.split) == ("org/d", "refs/convert/parquet", "default/train/*.parquet", "train")
    d = p("cognitivecomputations/SystemChat-2.0:train", "dataset")
    assert (d.repo_id, d.revision, d.glob, d.split) == ("cognitivecomputations/SystemChat-2.0", None, None, "train")
    assert str(d) == "cognitivecomputations/SystemChat-2.0:train"
    assert str(d.with_revision("a" * 40)) == "cognitivecomputations/SystemChat-2.0@" + "a" * 40 + ":train"
    # local: absolute, ./ and ~ paths, and anything that is not shaped like a hub id
    for local in ("/data/org/name", "./org/name", "~/org/name", "verified.jsonl", "a/b/c", "a b/c"):
        assert p(local, "model") is None
    with pytest.raises(UserError, match=r"^hf://nope: not a hub model id; expected hf://ORG/NAME\[@REVISION\]$"):
        p("hf://nope", "model")


def test_an_existing_local_path_wins_over_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert hub.parse_spec("org/name", "model") is not None
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert hub.parse_spec("org/name", "model") is None
    assert hub.resolve_model("org/name").path == Path("org/name") and not hub.resolve_model("org/name").is_hub
    assert hub.resolve_dataset("org/name").files == (Path("org/name"),)
    assert hub.parse_spec("hf://org/name", "model") is not None  # hf:// always means the hub


def test_split_names_follow_the_dataset_viewer():
    files = ["data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet", "data/test-00000.parquet",
             "dev.jsonl", "pretraining_notes.jsonl"]
    assert hub.split_files(files, "train") == files[:2]
    assert hub.split_files(files, "test") == ["data/test-00000.parquet"]
    assert hub.split_files(files, "validation") == ["dev.jsonl"]  # an alias
    # no file names a split: every file is train, and there is no other split
    assert hub.split_files([SYSTEMCHAT_FILE], "train") == [SYSTEMCHAT_FILE]
    assert hub.split_files([SYSTEMCHAT_FILE], "test") == []
    assert hub.data_patterns(hub.HubSpec("dataset", "o/d", glob="data")) == ("data/*.jsonl", "data/*.json", "data/*.parquet")
    assert hub.data_patterns(hub.HubSpec("dataset", "o/d", glob="x.jsonl")) == ("x.jsonl",)


def test_repin_keeps_a_resumed_run_on_its_first_commit():
    c = "c" * 40
    assert hub.repin("org/m", f"org/m@{c}", "model") == f"org/m@{c}"
    assert hub.repin("org/m@main", f"org/m@{c}", "model") == f"org/m@{c}"
    assert hub.repin("org/m@" + "d" * 40, f"org/m@{c}", "model") == "org/m@" + "d" * 40  # asked for a commit
    assert hub.repin("org/other", f"org/m@{c}", "model") == "org/other"  # another repo
    assert hub.repin("org/d:train", f"org/d@{c}:test", "dataset") == "org/d:train"  # another split
    assert hub.repin("org/d:train", f"org/d@{c}:train", "dataset") == f"org/d@{c}:train"
    assert hub.repin("org/m", None, "model") == "org/m"


# ---- resolution through the cache ---------------------------------------------------------------


def test_model_ids_resolve_branch_tag_and_commit(offline_hub):
    main, v2 = offline_hub.model_commits
    src = hub.resolve_model(MODEL)
    assert src.is_hub and (src.repo_id, src.revision, src.commit) == (MODEL, None, main)
    assert src.path == offline_hub.cache / "models--test-org--tiny-qwen3" / "snapshots" / main
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in src.path.iterdir()}
    assert src.pinned == f"{MODEL}@{main}"
    assert hub.resolve_model(f"{MODEL}@v2").commit == v2  # a branch
    assert hub.resolve_model(f"{MODEL}@{main}").commit == main  # a full commit
    assert hub.resolve_model(f"hf://{MODEL}@v2").pinned == f"hf://{MODEL}@{v2}"
    assert hub.resolve_tokenizer(f"{MODEL}@v2").path.name == v2


def test_dataset_ids_resolve_to_local_files(offline_hub):
    src = hub.resolve_dataset(f"{SYSTEMCHAT}:train")
    assert [f.name for f in src.files] == [SYSTEMCHAT_FILE]  # not README.md, not .gitattributes
    assert src.commit == offline_hub.systemchat_commit
    assert src.pinned == f"{SYSTEMCHAT}@{offline_hub.systemchat_commit}:train"
    assert len(src.files[0].read_text().splitlines()) == SYSTEMCHAT_RECORDS
    assert [f.name for f in hub.resolve_dataset(f"hf://datasets/{SYSTEMCHAT}").files] == [SYSTEMCHAT_FILE]
    assert [f.name for f in hub.resolve_dataset(f"{VERIFIED}:train").files] == ["train-00000-of-00001.jsonl"]
    assert [f.name for f in hub.resolve_dataset(f"{VERIFIED}@main/data/test-*.jsonl").files] == ["test-00000-of-00001.jsonl"]
    assert len(hub.resolve_dataset(VERIFIED).files) == 2


# ---- errors, offline ----------------------------------------------------------------------------


def _one_line_error(call, *args, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        call(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_offline_and_not_cached_names_id_revision_and_the_download_command(offline_hub):
    msg = _one_line_error(hub.resolve_model, "test-org/absent@v3")
    assert msg.startswith("test-org/absent@v3: no local path 'test-org/absent@v3' exists, and model test-org/absent@v3 "
                          "is not in the local hub cache")
    assert "HF_HUB_OFFLINE is set; pre-download it with: hf download test-org/absent --revision v3 --include '*.json'" in msg
    # an unknown revision of a cached repo is "not cached" too: offline, nobody can tell it does not exist
    assert f"model {MODEL}@nope is not in the local hub cache" in _one_line_error(hub.resolve_model, f"{MODEL}@nope")
    msg = _one_line_error(hub.resolve_dataset, "hf://datasets/test-org/absent:train")
    assert msg.endswith("pre-download it with: hf download test-org/absent --repo-type dataset "
                        "--include '*.jsonl' --include '*.json' --include '*.parquet'")
    assert "no local path" not in msg  # hf:// is never a local path


def test_the_advised_download_command_reads_the_cache(offline_hub, tmp_path):
    # The command the errors print is a real `hf download` command line: offline, on a cache that
    # holds the repo, it succeeds and prints the snapshot folder.
    exe = Path(sys.executable).with_name("hf")
    if not exe.exists():
        pytest.skip("no `hf` command next to this Python")
    command = hub.download_command(hub.HubSpec("model", MODEL, "v2"), hub.MODEL_METADATA_PATTERNS,
                                   hub.MODEL_IGNORE_PATTERNS)
    args = [str(exe)] + shlex.split(command)[1:]
    env = {**os.environ, "HF_HOME": str(offline_hub.home), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1].endswith(offline_hub.model_commits[1])


def test_missing_files_in_a_cached_snapshot(offline_hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    home = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    # huggingface_hub's own listing of the repo names a file the snapshot lacks (an interrupted download)
    add_commit(home, "test-org/partial", {"config.json": b"{}"}, listed_only=("model.safetensors",))
    msg = _one_line_error(hub.resolve_model, "test-org/partial")
    assert msg.startswith("test-org/partial: the cached snapshot of model test-org/partial@main misses files "
                          "(model.safetensors) and HF_HUB_OFFLINE is set; complete it with: hf download test-org/partial")
    # repos that lack what this tool reads
    commit = add_commit(home, "test-org/no-config", {"model.safetensors": b"x"})
    assert _one_line_error(hub.resolve_model, "test-org/no-config").startswith(
        f"test-org/no-config: test-org/no-config at commit {commit} has no config.json")
    commit = add_commit(home, "test-org/bin-only", {"config.json": b"{}", "pytorch_model.bin": b"x"})
    assert _one_line_error(hub.resolve_model, "test-org/bin-only").startswith(
        f"test-org/bin-only: test-org/bin-only at commit {commit} has no *.safetensors weights; it has only "
        "pytorch_model.bin, and this tool reads safetensors")
    assert hub.resolve_model("test-org/bin-only", weights=False).commit == commit  # the config alone is fine
    assert "has no tokenizer files" in _one_line_error(hub.resolve_tokenizer, "test-org/bin-only")
    commit = add_commit(home, "test-org/notes", {"README.md": b"#"}, kind="dataset")
    assert _one_line_error(hub.resolve_dataset, "test-org/notes:test").startswith(
        f"test-org/notes:test: dataset test-org/notes at commit {commit} has no files matching *.jsonl or *.json "
        "or *.parquet and split 'test'")


def test_an_invalid_id(offline_hub):
    assert _one_line_error(hub.resolve_model, "test--org/x") == \
        "test--org/x: 'test--org/x' is not a valid hub id: Cannot have -- or .. in repo_id: 'test--org/x'."


# ---- errors the Hub reports (a local stand-in for its HTTP API) ----------------------------------


@pytest.fixture
def online_hub(tmp_path, monkeypatch):
    from huggingface_hub import constants

    with FakeHub() as fake:
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "ENDPOINT", fake.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", fake.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
        monkeypatch.delenv("HF_TOKEN", raising=False)
        monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
        yield fake


def test_errors_the_hub_reports(online_hub):
    assert _one_line_error(hub.resolve_model, "test-org/missing") == (
        "test-org/missing: no local path 'test-org/missing' exists, and there is no model repo test-org/missing on "
        "the hub (if it is private, set HF_TOKEN)")
    assert _one_line_error(hub.resolve_model, "test-org/gated") == (
        "test-org/gated: test-org/gated is a gated model repo and no token is set (HF_TOKEN or `hf auth login`); "
        f"accept its terms on {online_hub.url}/test-org/gated")
    assert _one_line_error(hub.resolve_model, "hf://test-org/tiny-qwen3@nope") == (
        "hf://test-org/tiny-qwen3@nope: model repo test-org/tiny-qwen3 has no revision 'nope' "
        "(a branch, a tag or a full commit hash)")
    assert _one_line_error(hub.resolve_model, "test-org/holey") == (
        "test-org/holey: model test-org/holey@main has no file config.json")


def test_mapping_of_what_snapshot_download_handles_itself():
    from huggingface_hub.errors import OfflineModeIsEnabled

    spec = hub.HubSpec("model", "org/m", "main")
    err = hub.hub_error(OfflineModeIsEnabled("offline"), "org/m@main", spec, ("*.json",))
    assert isinstance(err, UserError)
    assert str(err) == ("org/m@main: model org/m@main needs the hub but HF_HUB_OFFLINE is set; pre-download it with: "
                        "hf download org/m --revision main --include '*.json'")
    bug = KeyError("x")
    assert hub.hub_error(bug, "org/m", spec) is bug  # not a hub error: re-raised as it is
