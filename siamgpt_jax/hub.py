"""Models and datasets named by their Hugging Face Hub ids, resolved to local files.

Spec syntax (what `model.hf_path`, `import-hf`, `export-hf --tokenizer-dir`, `verify` inputs and
`data.sources[].path` accept):

    models    ORG/NAME[@REVISION]                      Qwen/Qwen3-32B, Qwen/Qwen3-0.6B@main
    datasets  ORG/NAME[@REVISION][/GLOB][:SPLIT]       cognitivecomputations/SystemChat-2.0:train
                                                       org/data@v1/data/*.parquet
    either    hf://ORG/NAME...  (datasets also hf://datasets/ORG/NAME...): always the hub

REVISION is a branch, a tag or a full 40-hex commit (also refs/pr/N and refs/convert/NAME; other
names with '/' are not supported). GLOB picks files inside the repo (fnmatch: '*' crosses
folders); a GLOB without wildcards or a data extension names a folder. SPLIT keeps the files whose
path names the split the way the hub's dataset viewer reads names (`train-0000.parquet`,
`data/test.jsonl`, `validation/...`, with the aliases in SPLIT_ALIASES); a repo whose files name no
split at all is all `train`.

Local or hub? A spec that exists as a local path is that path; so is one starting with '/', '.' or
'~', and one that does not have the shape of a hub id. Anything else is a hub id, and the errors
for it also say that no local path of that name exists.

Files come through huggingface_hub's `snapshot_download` and its cache: HF_HOME / HF_HUB_CACHE
say where, HF_HUB_OFFLINE=1 reads only the cache, HF_TOKEN (or `hf auth login`) authenticates.
Only what the tool reads is fetched: for models the top-level JSON files (config, safetensors
index, generation config, tokenizer), merges.txt, chat templates and *.safetensors; for datasets
the JSONL, JSON and Parquet files the GLOB and SPLIT select. Reading them stays with the readers.

A resolved source carries the commit it read, and `ResolvedSource.pinned` is the spec that reads
exactly those files again (`ORG/NAME@COMMIT...`): training records it in the run's config.json.

Multi-host (after jax.distributed.initialize): process 0 resolves and downloads while the others
wait on the coordination service's key-value store; it publishes the commit (or its one-line
error), and the others then resolve `ORG/NAME@COMMIT`. With HF_HOME on a file system every host
shares, that is a read of what process 0 wrote; with per-host caches each host downloads that same
commit itself. Either way all hosts read one commit even if a branch moves meanwhile.

Every failure a user can fix is a one-line `UserError`; `hub_error` maps huggingface_hub's
exception classes to those lines.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

from siamgpt_jax.errors import UserError

Kind = Literal["model", "dataset"]

HUB_PREFIX = "hf://"
# what a model folder needs: config.json, model.safetensors.index.json, generation_config.json and
# the tokenizer's JSON files are all "*.json"; merges.txt and chat_template.jinja are the rest
MODEL_METADATA_PATTERNS = ("*.json", "merges.txt", "*.jinja")
MODEL_WEIGHT_PATTERNS = ("*.safetensors",)
MODEL_IGNORE_PATTERNS = ("*/*",)  # subfolders hold other formats (onnx, gguf, "original/"), never ours
DATA_EXTENSIONS = ("jsonl", "json", "parquet")
# metadata the hub's dataset tooling keeps next to data files; never records
DATA_IGNORE_PATTERNS = (".*", "*/.*", "_*", "*/_*", "dataset_info*.json", "*/dataset_info*.json", "state.json")
# the hub's dataset viewer's split names and their aliases
SPLIT_ALIASES = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "val", "dev"),
    "test": ("test", "testing", "eval", "evaluation"),
}
WAIT_ENV = "SIAMGPT_HUB_WAIT_S"  # how long other processes wait for process 0's download
DEFAULT_WAIT_S = 6 * 3600

_REVISION = r"refs/(?:pr/\d+|convert/[\w.-]+)|[^/:@\s]+"
_REPO = r"[A-Za-z0-9][\w.-]*/[\w.-]+"
_MODEL_RE = re.compile(rf"(?P<repo>{_REPO})(?:@(?P<rev>{_REVISION}))?")
_DATASET_RE = re.compile(rf"(?P<repo>{_REPO})(?:@(?P<rev>{_REVISION}))?(?:/(?P<glob>[^:]+))?(?::(?P<split>[\w.-]+))?")
_COMMIT_RE = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class HubSpec:
    """A parsed hub spec. `revision` None = the repo's default branch."""

    kind: Kind
    repo_id: str
    revision: str | None = None
    glob: str | None = None  # datasets only
    split: str | None = None  # datasets only
    prefixed: bool = False  # written with hf://

    def with_revision(self, revision: str) -> "HubSpec":
        return HubSpec(self.kind, self.repo_id, revision, self.glob, self.split, self.prefixed)

    def __str__(self) -> str:
        prefix = (HUB_PREFIX + ("datasets/" if self.kind == "dataset" else "")) if self.prefixed else ""
        rev = f"@{self.revision}" if self.revision else ""
        glob = f"/{self.glob}" if self.glob else ""
        split = f":{self.split}" if self.split else ""
        return f"{prefix}{self.repo_id}{rev}{glob}{split}"


@dataclass(frozen=True)
class ResolvedSource:
    """Where a spec's files are on this machine, and which hub commit they are (None when local)."""

    spec: str  # as given
    path: Path  # the model folder, the dataset snapshot folder, or the local path as given
    files: tuple[Path, ...] = ()  # datasets: the data files, sorted (a local spec: itself)
    repo_id: str | None = None
    revision: str | None = None  # as asked: a branch, tag or commit; None = the default branch
    commit: str | None = None
    hub: HubSpec | None = None

    @property
    def is_hub(self) -> bool:
        return self.hub is not None

    @property
    def pinned(self) -> str:
        """The spec that resolves to exactly these files again (the local path for local specs)."""
        return str(self.hub.with_revision(self.commit)) if self.hub is not None else self.spec


def parse_spec(spec: str | os.PathLike, kind: Kind) -> HubSpec | None:
    """The hub spec `spec` names, or None if it is a local path (see the module docstring)."""
    text = os.fspath(spec)
    if text.startswith(HUB_PREFIX):
        body = text[len(HUB_PREFIX):]
        if kind == "dataset" and body.startswith("datasets/"):
            body = body[len("datasets/"):]
        parsed = _match(body, kind, prefixed=True)
        if parsed is None:
            shape = "ORG/NAME[@REVISION][/GLOB][:SPLIT]" if kind == "dataset" else "ORG/NAME[@REVISION]"
            raise UserError(f"{text}: not a hub {kind} id; expected hf://{shape}")
        return parsed
    if text.startswith(("/", ".", "~")) or os.path.exists(text):
        return None
    return _match(text, kind, prefixed=False)


def _match(body: str, kind: Kind, prefixed: bool) -> HubSpec | None:
    m = (_DATASET_RE if kind == "dataset" else _MODEL_RE).fullmatch(body)
    if m is None:
        return None
    groups = m.groupdict()
    return HubSpec(kind, m["repo"], m["rev"], groups.get("glob"), groups.get("split"), prefixed)


def is_hub_spec(spec: str | os.PathLike, kind: Kind = "model") -> bool:
    return parse_spec(spec, kind) is not None


# ---- models -----------------------------------------------------------------------------------


def resolve_model(spec: str | os.PathLike, *, weights: bool = True, coordinate: bool = True) -> ResolvedSource:
    """A model folder (config.json, tokenizer files and, with `weights`, the safetensors) for `spec`.

    A local path is returned as given (its readers check it). A hub id is downloaded into, or read
    from, huggingface_hub's cache. `weights=False` fetches only the small files (the config for an
    architecture, the tokenizer for an export). `coordinate`: see the module docstring (multi-host).
    This is the one call generate, serve and eval need: `resolve_model(spec).path`.
    """
    hub = parse_spec(spec, "model")
    if hub is None:
        return ResolvedSource(spec=os.fspath(spec), path=Path(spec).expanduser())
    patterns = MODEL_METADATA_PATTERNS + (MODEL_WEIGHT_PATTERNS if weights else ())
    return _coordinated(os.fspath(spec), hub, lambda h: _resolve_model(os.fspath(spec), h, patterns, weights),
                        coordinate, key=f"model/{weights}")


def _resolve_model(spec: str, hub: HubSpec, patterns: tuple[str, ...], weights: bool) -> ResolvedSource:
    folder = _snapshot(spec, hub, patterns, MODEL_IGNORE_PATTERNS)
    source = ResolvedSource(spec, folder, (), hub.repo_id, hub.revision, _commit_of(folder), hub)
    where = f"{spec}: {hub.repo_id} at commit {source.commit}"
    if not (folder / "config.json").is_file():
        raise UserError(f"{where} has no config.json{_offline_hint(hub, patterns, MODEL_IGNORE_PATTERNS)}; "
                        f"is it a model repo?")
    if weights and not any(folder.glob("*.safetensors")):
        others = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".gguf"))
        why = f"; it has only {', '.join(others)}, and this tool reads safetensors" if others else ""
        raise UserError(f"{where} has no *.safetensors weights{why}"
                        f"{_offline_hint(hub, patterns, MODEL_IGNORE_PATTERNS)}")
    return source


def resolve_tokenizer(spec: str | os.PathLike, *, coordinate: bool = True) -> ResolvedSource:
    """A folder with a model repo's tokenizer files (no weights), e.g. the export's tokenizer source."""
    hub = parse_spec(spec, "model")
    if hub is None:
        return ResolvedSource(spec=os.fspath(spec), path=Path(spec).expanduser())

    def resolve(h: HubSpec) -> ResolvedSource:
        folder = _snapshot(os.fspath(spec), h, MODEL_METADATA_PATTERNS, MODEL_IGNORE_PATTERNS)
        source = ResolvedSource(os.fspath(spec), folder, (), h.repo_id, h.revision, _commit_of(folder), h)
        if not any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
            raise UserError(f"{spec}: {h.repo_id} at commit {source.commit} has no tokenizer files"
                            f"{_offline_hint(h, MODEL_METADATA_PATTERNS, MODEL_IGNORE_PATTERNS)}")
        return source

    return _coordinated(os.fspath(spec), hub, resolve, coordinate, key="tokenizer")


# ---- datasets ---------------------------------------------------------------------------------


def resolve_dataset(spec: str | os.PathLike, *, coordinate: bool = True) -> ResolvedSource:
    """The local data files (JSONL, JSON, Parquet) for `spec`; reading them is the readers' job.

    A local spec is returned as given, as its one file (a folder stays a folder: the readers
    decide). A hub id yields the sorted files its GLOB and SPLIT select; none is an error.
    """
    hub = parse_spec(spec, "dataset")
    if hub is None:
        path = Path(spec).expanduser()
        return ResolvedSource(spec=os.fspath(spec), path=path, files=(path,))
    return _coordinated(os.fspath(spec), hub, lambda h: _resolve_dataset(os.fspath(spec), h), coordinate,
                        key="dataset")


def data_patterns(hub: HubSpec) -> tuple[str, ...]:
    """allow_patterns for a dataset spec's GLOB (every data file when there is none)."""
    if not hub.glob:
        return tuple(f"*.{ext}" for ext in DATA_EXTENSIONS)
    glob = hub.glob.rstrip("/")
    if any(c in glob for c in "*?[") or glob.rsplit(".", 1)[-1] in DATA_EXTENSIONS:
        return (glob,)
    return tuple(f"{glob}/*.{ext}" for ext in DATA_EXTENSIONS)  # a folder


def split_files(files: list[str], split: str) -> list[str]:
    """The files of `split` among repo paths `files`, by the names the hub's dataset viewer reads."""
    names = SPLIT_ALIASES.get(split, (split,))
    known = {alias for aliases in SPLIT_ALIASES.values() for alias in aliases} | set(names)

    def names_a_split(path: str, words) -> bool:
        # the viewer's rule: the word is a folder name, or a file-name part set off by "-._ " or digits
        alt = "|".join(re.escape(w) for w in words)
        return re.search(rf"(?:^|[-._ 0-9/])(?:{alt})(?:[-._ 0-9/]|$)", path) is not None

    chosen = [f for f in files if names_a_split(f, names)]
    if not chosen and split in SPLIT_ALIASES["train"] and not any(names_a_split(f, known) for f in files):
        return list(files)  # no file names a split: the hub reads them all as train
    return chosen


def _resolve_dataset(spec: str, hub: HubSpec) -> ResolvedSource:
    patterns = data_patterns(hub)
    folder = _snapshot(spec, hub, patterns, DATA_IGNORE_PATTERNS)
    from huggingface_hub.utils import filter_repo_objects

    local = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    files = list(filter_repo_objects(local, allow_patterns=list(patterns), ignore_patterns=list(DATA_IGNORE_PATTERNS)))
    if hub.split:
        files = split_files(files, hub.split)
    commit = _commit_of(folder)
    if not files:
        selection = " and ".join(x for x in (
            f"files matching {' or '.join(patterns)}", f"split '{hub.split}'" if hub.split else "") if x)
        raise UserError(f"{spec}: dataset {hub.repo_id} at commit {commit} has no {selection}"
                        f"{_offline_hint(hub, patterns)}")
    return ResolvedSource(spec, folder, tuple(folder / f for f in files), hub.repo_id, hub.revision, commit, hub)


# ---- pinning ----------------------------------------------------------------------------------


def repin(spec: str, recorded: str | None, kind: Kind) -> str:
    """`spec`, or the `recorded` spec of an earlier run of the job when that one pins the same repo
    (same GLOB and SPLIT) to a commit and `spec` does not name a commit itself: so a resumed run
    reads the commit its first run read even if the branch has moved since."""
    hub = parse_spec(spec, kind)
    if hub is None or recorded is None or (hub.revision and _COMMIT_RE.fullmatch(hub.revision)):
        return spec
    try:
        old = parse_spec(recorded, kind)
    except UserError:
        return spec
    same = old is not None and (old.repo_id, old.glob, old.split) == (hub.repo_id, hub.glob, hub.split)
    if same and old.revision and _COMMIT_RE.fullmatch(old.revision):
        return str(hub.with_revision(old.revision))
    return spec


# ---- huggingface_hub calls and their errors ---------------------------------------------------


def _snapshot(spec: str, hub: HubSpec, allow: tuple[str, ...], ignore: tuple[str, ...]) -> Path:
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(hub.repo_id, repo_type=hub.kind, revision=hub.revision,
                                   allow_patterns=list(allow), ignore_patterns=list(ignore))
    except Exception as e:  # noqa: BLE001 - what hub_error does not know is re-raised as it is
        # the metadata a dataset download skips is harmless to fetch: keep the advice short
        error = hub_error(e, spec, hub, allow, ignore if hub.kind == "model" else ())
        if error is e:
            raise
        raise error from e
    return Path(folder)


def _commit_of(folder: Path) -> str:
    # snapshot_download returns <cache>/<repo folder>/snapshots/<commit>
    if folder.parent.name != "snapshots" or not _COMMIT_RE.fullmatch(folder.name):
        raise RuntimeError(f"huggingface_hub returned {folder}, not a snapshots/<commit> folder of its cache")
    return folder.name


def download_command(hub: HubSpec, allow: tuple[str, ...] = (), ignore: tuple[str, ...] = ()) -> str:
    """The shell command that puts `hub`'s files into the cache, for the CLI this huggingface_hub ships."""
    import huggingface_hub

    major = int(huggingface_hub.__version__.split(".")[0])
    args = ["hf" if major >= 1 else "huggingface-cli", "download", hub.repo_id]
    if hub.kind != "model":
        args += ["--repo-type", hub.kind]
    if hub.revision:
        args += ["--revision", hub.revision]
    for pattern in allow:
        args += ["--include", pattern]
    for pattern in ignore:
        args += ["--exclude", pattern]
    return shlex.join(args)


def _offline_hint(hub: HubSpec, allow: tuple[str, ...], ignore: tuple[str, ...] = ()) -> str:
    from huggingface_hub import constants

    if not constants.is_offline_mode():
        return ""
    return f" (HF_HUB_OFFLINE is set, so nothing was downloaded; pre-download with: {download_command(hub, allow, ignore)})"


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def hub_error(exc: BaseException, spec: str, hub: HubSpec, allow: tuple[str, ...] = (),
              ignore: tuple[str, ...] = ()) -> BaseException:
    """huggingface_hub's exception -> a one-line UserError naming the id, the revision and the fix.
    Exceptions it does not know are returned unchanged (a bug keeps its traceback)."""
    from huggingface_hub import constants, errors, get_token

    rev = hub.revision or "main"
    what = f"{hub.kind} {hub.repo_id}@{rev}"
    unlike_local = "" if hub.prefixed else f"no local path '{spec}' exists, and "
    cmd = download_command(hub, allow, ignore)
    if isinstance(exc, errors.IncompleteSnapshotError):  # before LocalEntryNotFoundError, its base
        detail = re.search(r"\d+ file\(s\) are missing \(([^)]*)\)", str(exc))
        missing = f" ({detail.group(1)})" if detail else ""
        why = "HF_HUB_OFFLINE is set" if constants.is_offline_mode() else "the hub cannot be reached"
        return UserError(f"{spec}: the cached snapshot of {what} misses files{missing} and {why}; "
                         f"complete it with: {cmd}")
    if isinstance(exc, errors.LocalEntryNotFoundError):
        if constants.is_offline_mode():
            why = f"is not in the local hub cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is set"
        else:
            cause = exc.__cause__ or exc.__context__
            why = (f"is not in the local hub cache ({constants.HF_HUB_CACHE}) and the hub cannot be reached"
                   + (f" ({type(cause).__name__})" if cause is not None else ""))
        return UserError(f"{spec}: {unlike_local}{what} {why}; pre-download it with: {cmd}")
    if isinstance(exc, errors.GatedRepoError):  # before RepositoryNotFoundError, its base
        token = ("no token is set (HF_TOKEN or `hf auth login`)" if get_token() is None
                 else "the token in use has not been granted access yet")
        return UserError(f"{spec}: {hub.repo_id} is a gated {hub.kind} repo and {token}; accept its terms on "
                         f"{constants.ENDPOINT}/{'datasets/' if hub.kind == 'dataset' else ''}{hub.repo_id}")
    if isinstance(exc, errors.RepositoryNotFoundError):
        token = "set HF_TOKEN" if get_token() is None else "check that HF_TOKEN can read it"
        return UserError(f"{spec}: {unlike_local}there is no {hub.kind} repo {hub.repo_id} on the hub "
                         f"(if it is private, {token})")
    if isinstance(exc, errors.RevisionNotFoundError):
        return UserError(f"{spec}: {hub.kind} repo {hub.repo_id} has no revision '{rev}' "
                         f"(a branch, a tag or a full commit hash)")
    if isinstance(exc, errors.EntryNotFoundError):
        name = getattr(getattr(exc, "response", None), "url", None)
        name = str(name).rsplit("/resolve/", 1)[-1].split("/", 1)[-1] if name else "a file its listing names"
        return UserError(f"{spec}: {what} has no file {name}")
    if isinstance(exc, errors.HFValidationError):
        return UserError(f"{spec}: '{hub.repo_id}' is not a valid hub id: {_one_line(exc)}")
    if isinstance(exc, errors.OfflineModeIsEnabled):
        return UserError(f"{spec}: {what} needs the hub but HF_HUB_OFFLINE is set; pre-download it with: {cmd}")
    if isinstance(exc, errors.HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        first = _one_line(str(exc).splitlines()[0]) if str(exc) else type(exc).__name__
        return UserError(f"{spec}: the hub answered {status} for {what}: {first}")
    return exc


# ---- multi-host -------------------------------------------------------------------------------

_CALLS: Counter[str] = Counter()


def _distributed_client():
    """jax's coordination-service client when this process is part of a multi-process job, else None.
    Only looked up when jax is already imported: a CLI that never imports jax never waits."""
    jax = sys.modules.get("jax")
    if jax is None or jax.process_count() == 1:
        return None
    from jax._src import distributed  # the client orbax's multihost helpers also use

    return distributed.global_state.client


def _coordinated(spec: str, hub: HubSpec, resolve: Callable[[HubSpec], ResolvedSource], coordinate: bool,
                 key: str) -> ResolvedSource:
    client = _distributed_client() if coordinate else None
    if client is None:
        return resolve(hub)
    import jax

    # Every process makes the same calls in the same order, so the n-th resolution of a repo on one
    # process is the n-th on every other (keyed by repo, not by spec text: a resumed run may pin
    # the revision on one host only, from a config.json the others cannot see)
    name = f"{key}/{hub.repo_id}"
    _CALLS[name] += 1
    kv_key = f"siamgpt_jax/hub/{name}/{_CALLS[name]}"
    if jax.process_index() == 0:
        try:
            source = resolve(hub)
        except BaseException as e:
            text = str(e) if isinstance(e, UserError) else f"{type(e).__name__}: {e}"
            client.key_value_set(kv_key, "error:" + _one_line(text))
            raise
        client.key_value_set(kv_key, "commit:" + source.commit)
        return source
    wait_s = float(os.environ.get(WAIT_ENV, DEFAULT_WAIT_S))
    try:
        message = client.blocking_key_value_get(kv_key, int(wait_s * 1000))
    except Exception as e:  # noqa: BLE001 - the coordination service's timeout/shutdown errors
        raise UserError(f"{spec}: process {jax.process_index()} waited {wait_s:.0f} s ({WAIT_ENV}) for process 0 "
                        f"to resolve it and got no answer ({_one_line(e)})") from None
    if message.startswith("error:"):
        raise UserError(f"{message[len('error:'):]} (reported by process 0)")
    source = resolve(hub.with_revision(message[len("commit:"):]))
    # the same source as process 0's: the revision as asked, the commit it resolved
    return ResolvedSource(source.spec, source.path, source.files, hub.repo_id, hub.revision, source.commit, hub)
