"""pythainlp's CRF sentence cutter (crfcut), computed the same way but ~50x cheaper per line.

`crfcut.segment(line)` spends its time building 37 feature strings per token in Python, looking
each one up in the CRFsuite model through pycrfsuite, and word-tokenizing the whole line with
newmm. Here the same model file is read once into arrays, feature weights are cached per token /
token pair / token triple, and the line's tokens come from a per-segment newmm memo. The result is
the same, not an approximation:

* tokens: newmm cannot join across a run of spaces/tabs unless a dictionary word that itself
  contains a space spans it (the dictionary has a few hundred, e.g. "ราว ๆ"); such runs are left
  inside their segment, all others are cut points, and pythainlp's own `rejoin_formatted_num`
  runs on the joined list, exactly as `word_tokenize` does;
* per-token state scores are summed in CRFsuite's order (bias, then the n-gram features in
  crfcut's order, 0.0 for attributes the model does not know) in float64, and Viterbi follows
  crf1dc_viterbi (first label wins ties);
* belt and braces: a line whose Viterbi decisions are closer than 1e-7 anywhere, or whose
  tokenization could not be split safely, goes to the real `crfcut.segment`.

tests/corpus/test_crf_sentences.py compares every line of the shipped Thai data with crfcut.
"""

from __future__ import annotations

import functools
import re
import struct
from pathlib import Path

import numpy as np

_PAD = "xxpad"  # crfcut's padding token, 2 on each side (window = 2)
_TIE_MARGIN = 1e-7
_SPACE_RUN_RE = re.compile(r"[ \t]+")  # what newmm's non-Thai pattern turns into one token
# crfcut's n-gram slots in feature order: (n, offset) for n = 1..3, offset = -2 .. 3 - n.
_SLOTS = tuple((n, o) for n in (1, 2, 3) for o in range(-2, 4 - n))

_FEATURE_DTYPE = np.dtype([("type", "<u4"), ("src", "<u4"), ("dst", "<u4"), ("w", "<f8")])  # 20 bytes, packed

fallbacks = 0  # lines handed to the real crfcut (near ties); the tests and the bench read it


def _cqdb_strings(buf: bytes, off: int, count: int) -> list[str]:
    """id -> string of a CQDB chunk (CRFsuite's label/attribute dictionary), via its backward array."""
    chunk, _size, _flag, _order, bwd_size, bwd_off = struct.unpack_from("<4sIIIII", buf, off)
    if chunk != b"CQDB" or bwd_size < count:
        raise ValueError(f"CRF model: bad CQDB chunk at offset {off}")
    out = []
    for i, rec in enumerate(struct.unpack_from(f"<{count}I", buf, off + bwd_off)):
        rid, ksize = struct.unpack_from("<II", buf, off + rec)
        if rid != i:
            raise ValueError(f"CRF model: CQDB record {i} has id {rid}")
        out.append(buf[off + rec + 8 : off + rec + 8 + ksize - 1].decode("utf-8"))  # key is NUL-terminated
    return out


class CrfModel:
    """A CRFsuite first-order model (crf1d, "FOMC") as arrays: state weights per attribute, transitions."""

    def __init__(self, path: str | Path):
        buf = Path(path).read_bytes()
        magic, _, mtype, _, _, n_labels, n_attrs, off_feat, off_labels, off_attrs, _, _ = struct.unpack_from("<4sI4sIIIIIIIII", buf, 0)
        if magic != b"lCRF" or mtype != b"FOMC":
            raise ValueError(f"{path}: not a CRFsuite first-order model")
        self.labels = _cqdb_strings(buf, off_labels, n_labels)
        attrs = _cqdb_strings(buf, off_attrs, n_attrs)
        chunk, _, n_feat = struct.unpack_from("<4sII", buf, off_feat)
        if chunk != b"FEAT":
            raise ValueError(f"{path}: no FEAT chunk at offset {off_feat}")
        feats = np.frombuffer(buf, dtype=_FEATURE_DTYPE, count=n_feat, offset=off_feat + 12)
        state = np.zeros((n_attrs, n_labels))
        st = feats[feats["type"] == 0]
        state[st["src"], st["dst"]] = st["w"]
        self.trans = np.zeros((n_labels, n_labels))
        tr = feats[feats["type"] == 1]
        self.trans[tr["src"], tr["dst"]] = tr["w"]
        self._rows = dict(zip(attrs, map(tuple, state.tolist())))
        self._zero = (0.0,) * n_labels

    def weights(self, attr: str) -> tuple[float, ...]:
        """State weight per label (model label order); zeros for an attribute the model lacks."""
        return self._rows.get(attr, self._zero)


@functools.lru_cache(maxsize=4096)
def _diagonal(n: int, slots: int) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (i + j, j) of shape (n, slots)."""
    j = np.arange(slots)
    return np.arange(n)[:, None] + j, np.broadcast_to(j, (n, slots))


class _RowTable:
    """key -> row id, rows in a numpy array that grows by doubling; cleared when it gets huge."""

    LIMIT = 300_000

    def __init__(self, slots: int, make_row):
        self.make_row = make_row
        self.ids: dict = {}
        self.arr = np.zeros((1024, slots, 2))

    def gather(self, keys: list) -> np.ndarray:
        get = self.ids.get
        ids = [get(k, -1) for k in keys]
        if -1 in ids:
            if len(self.ids) + len(ids) > self.LIMIT:
                self.ids.clear()
            for i, key in enumerate(keys):
                if ids[i] == -1:
                    ids[i] = self._add(key)
        return self.arr[ids]

    def _add(self, key) -> int:
        rid = self.ids.get(key)
        if rid is None:
            rid = self.ids[key] = len(self.ids)
            if rid == len(self.arr):
                self.arr = np.concatenate([self.arr, np.zeros_like(self.arr)])
            self.arr[rid] = self.make_row(key)
        return rid


class CrfSentenceCutter:
    """crfcut.segment, computed from cached per-token weights (see the module docstring)."""

    def __init__(self, model: CrfModel, enders: frozenset[str], starters: frozenset[str], segment_chunk, space_words):
        if model.labels != ["I", "E"]:
            raise ValueError(f"crfcut model labels are {model.labels}, expected ['I', 'E']")
        self.m = model
        self.enders, self.starters = enders, starters
        self.segment_chunk = segment_chunk  # newmm.segment with a memo
        self.bias = model.weights("bias")
        self.t00, self.t01 = model.trans[0].tolist()
        self.t10, self.t11 = model.trans[1].tolist()
        # dictionary words with spaces, keyed by their first space run and its two neighbours
        self.space_keys: dict[str, list[tuple[str, int]]] = {}
        for w in space_words:
            m = _SPACE_RUN_RE.search(w)
            if m.start() == 0 or m.end() == len(w):
                raise ValueError(f"dictionary word {w!r} starts or ends with a space")
            self.space_keys.setdefault(w[m.start() - 1 : m.end() + 1], []).append((w, m.start() - 1))
        # flag tables: for each slot, weights indexed by the ender (starter) flags of its tokens as bits
        self.flag_tables = {}
        for kind, word in (("ender", "ender"), ("starter", "starter")):
            for n, o in _SLOTS:
                rows = []
                for bits in range(2**n):
                    flags = [word if bits >> (n - 1 - b) & 1 else "normal" for b in range(n)]
                    rows.append(model.weights(f"{kind}_{n}_{o}_{o + n}=" + "|".join(flags)))
                self.flag_tables[kind, n, o] = np.array(rows)
        # word n-gram weights, one row per distinct token / pair / triple: (slots of that n, labels)
        self._word = {n: _RowTable(sum(1 for m, _ in _SLOTS if m == n), self._word_row(n)) for n in (1, 2, 3)}
        self._flags = {
            kind: {n: np.stack([self.flag_tables[kind, n, o] for m, o in _SLOTS if m == n]) for n in (1, 2, 3)}
            for kind in ("ender", "starter")
        }

    # ------------------------------------------------------------ tokens

    def tokens(self, line: str) -> list[str]:
        """pythainlp.tokenize.word_tokenize(line) (newmm, whitespace kept, numbers rejoined)."""
        from pythainlp.tokenize._utils import rejoin_formatted_num

        runs = [(m.start(), m.end()) for m in _SPACE_RUN_RE.finditer(line)]
        keep: set[int] = set()  # starts of runs a space-containing dictionary word may span
        for s, e in runs:
            for w, k in self.space_keys.get(line[s - 1 : e + 1] if s else "", ()):
                begin = s - 1 - k
                if begin >= 0 and line.startswith(w, begin):
                    keep.update(rs for rs, _ in runs if begin <= rs < begin + len(w))
        out: list[str] = []
        start = 0
        for s, e in runs:
            if s in keep:
                continue
            if s > start:
                out.extend(self.segment_chunk(line[start:s]))
            out.append(line[s:e])
            start = e
        if start < len(line):
            out.extend(self.segment_chunk(line[start:]))
        return rejoin_formatted_num(out)

    # ------------------------------------------------------------ scores

    def _word_row(self, n: int):
        offsets = [o for m, o in _SLOTS if m == n]

        def row(key) -> list[tuple[float, ...]]:
            gram = key if n == 1 else "|".join(key)
            return [self.m.weights(f"word_{n}_{o}_{o + n}={gram}") for o in offsets]

        return row

    def state_scores(self, toks: list[str]) -> np.ndarray:
        """(n, 2) CRF state scores, summed in crfcut's feature order as CRFsuite does."""
        n = len(toks)
        p = [_PAD, _PAD, *toks, _PAD, _PAD]
        keys = {1: p, 2: list(zip(p, p[1:])), 3: list(zip(p, p[1:], p[2:]))}
        cols = np.empty((n, 1 + 3 * len(_SLOTS), 2))
        cols[:, 0] = self.bias
        k = 1
        for kind, members in (("ender", self.enders), ("starter", self.starters)):
            f = np.fromiter((t in members for t in p), dtype=np.intp, count=n + 4)
            keys[kind] = {1: f, 2: f[:-1] * 2 + f[1:], 3: f[:-2] * 4 + f[1:-1] * 2 + f[2:]}
        for ng in (1, 2, 3):
            slots = 6 - ng  # offsets -2 .. 3 - ng
            rows = self._word[ng].gather(keys[ng])  # row q = the n-gram starting at padded index q
            at, slot = _diagonal(n, slots)  # token i, slot j reads the n-gram starting at i + j
            cols[:, k : k + 3 * slots : 3] = rows[at, slot]
            cols[:, k + 1 : k + 3 * slots : 3] = self._flags["ender"][ng][slot, keys["ender"][ng][at]]
            cols[:, k + 2 : k + 3 * slots : 3] = self._flags["starter"][ng][slot, keys["starter"][ng][at]]
            k += 3 * slots
        return np.cumsum(cols, axis=1)[:, -1]  # cumsum is a sequential left-to-right sum, as CRFsuite's +=

    def viterbi(self, state: np.ndarray) -> list[int] | None:
        """Best label ids (0 = I, 1 = E) as crf1dc_viterbi picks them; None on a near tie."""
        t00, t01, t10, t11 = self.t00, self.t01, self.t10, self.t11
        rows = state.tolist()
        p0, p1 = rows[0]
        back: list[tuple[int, int]] = []
        margin = float("inf")
        for s0, s1 in rows[1:]:
            a, b = p0 + t00, p1 + t10  # into I from I / from E
            c, d = p0 + t01, p1 + t11  # into E
            margin = min(margin, abs(a - b), abs(c - d))
            b0, m0 = (1, b) if a < b else (0, a)
            b1, m1 = (1, d) if c < d else (0, c)
            back.append((b0, b1))
            p0, p1 = m0 + s0, m1 + s1
        margin = min(margin, abs(p0 - p1))
        if margin < _TIE_MARGIN:
            return None
        lab = 1 if p0 < p1 else 0
        out = [lab]
        for pair in reversed(back):
            lab = pair[lab]
            out.append(lab)
        out.reverse()
        return out

    def segment(self, line: str) -> list[str]:
        """crfcut.segment(line)."""
        global fallbacks
        toks = self.tokens(line)
        if not toks:
            return []
        ids = self.viterbi(self.state_scores(toks))
        if ids is None:
            from pythainlp.tokenize import crfcut

            fallbacks += 1
            return crfcut.segment(line)
        labs = ["E" if i else "I" for i in ids]
        labs[-1] = "E"
        # crfcut's post-rules, verbatim in effect: terminal punctuation ends a sentence; a space
        # right after a sentence end does not.
        for idx, tok in enumerate(toks):
            if tok.strip().endswith(("!", ".", "?")):
                labs[idx] = "E"
            elif (idx == 0 or labs[idx - 1] == "E") and tok.strip() == "":
                labs[idx] = "I"
        sentences, cur = [], ""
        for tok, lab in zip(toks, labs):
            cur += tok
            if lab == "E" and cur != "":
                sentences.append(cur)
                cur = ""
        return sentences


@functools.lru_cache(maxsize=1)
def cutter() -> CrfSentenceCutter:
    """The process-wide cutter over pythainlp's shipped crfcut model (loaded on first use)."""
    from pythainlp.corpus import corpus_path, thai_words
    from pythainlp.tokenize import crfcut

    from siamgpt_jax.corpus.thai_text import _segment_chunk

    model = CrfModel(Path(corpus_path()) / crfcut._CRFCUT_DATA_FILENAME)
    # newmm's default dictionary is Trie(thai_words()), which strips each word
    space_words = sorted({w.strip() for w in thai_words() if _SPACE_RUN_RE.search(w.strip())})
    return CrfSentenceCutter(model, frozenset(crfcut._ENDERS), frozenset(crfcut._STARTERS), _segment_chunk, space_words)


def segment(line: str) -> list[str]:
    """Sentences of one line, identical to pythainlp.tokenize.crfcut.segment(line)."""
    return cutter().segment(line)
