"""pythainlp's CRF sentence cutter (crfcut), computed the same way but far cheaper per line.

`crfcut.segment(line)` spends its time building 37 feature strings per token in Python, looking
each one up in the CRFsuite model through pycrfsuite, and word-tokenizing the whole line with
newmm. Here the same model file is read once into arrays, and every feature that reads the
unigram, bigram and trigram starting at one position is summed once per distinct (token, next,
next-but-one) into a cached row; a token's state score is then the sum of a diagonal of its line's
rows (one numpy gather and one sum per line). The line's tokens come from a per-segment newmm memo.
The result is the same, not an approximation:

* tokens: newmm cannot join across a run of spaces/tabs unless a dictionary word that itself
  contains a space spans it (the dictionary has a few hundred, e.g. "ราว ๆ"); such runs are left
  inside their segment, all others are cut points, and pythainlp's own `rejoin_formatted_num`
  runs on the joined list, exactly as `word_tokenize` does;
* state scores hold the same weights as CRFsuite's (bias and crfcut's n-gram features, 0.0 for
  attributes the model does not know) in float64, summed in another order, so they may differ
  from CRFsuite's by rounding (~1e-13). Viterbi follows crf1dc_viterbi (first label wins ties),
  run on the difference of the two labels' scores;
* so rounding can never flip a decision, a line whose Viterbi decisions are closer than 1e-7
  anywhere goes to the real `crfcut.segment` (none in the shipped data or the benchmark corpus).

tests/corpus/test_fast_paths.py compares every line of the shipped Thai data with crfcut, the
state scores with crfcut's own features summed, and the Viterbi with the two-score recursion.
"""

from __future__ import annotations

import functools
import itertools
import re
import struct
from pathlib import Path

import numpy as np

from siamgpt_jax.corpus.newmm import segment_chunk

_PAD = "xxpad"  # crfcut's padding token, 2 on each side (window = 2)
_TIE_MARGIN = 1e-7
_SPACE_RUN_RE = re.compile(r"[ \t]+")  # what newmm's non-Thai pattern turns into one token
_WINDOW_SLOTS = 5  # a token reads the n-grams starting 2 before it to 2 after it (unigrams: 5 slots)

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
        self.rows = dict(zip(attrs, map(tuple, state.tolist())))  # attribute -> state weight per label
        self._zero = (0.0,) * n_labels

    def weights(self, attr: str) -> tuple[float, ...]:
        """State weight per label (model label order); zeros for an attribute the model lacks."""
        return self.rows.get(attr, self._zero)


class _RowTable:
    """key -> row id, rows of `width` floats in a numpy array that grows by doubling; cleared when huge."""

    LIMIT = 300_000

    def __init__(self, width: int, make_row):
        self.make_row = make_row
        self.ids: dict = {}
        self.arr = np.zeros((1024, width))

    def gather(self, keys: list) -> np.ndarray:
        """Rows for `keys`, (len(keys), width); rows for new keys are made once, in one batch."""
        ids = list(map(self.ids.get, keys))
        if None in ids:
            missing = list(dict.fromkeys(k for k, i in zip(keys, ids) if i is None))
            if len(self.ids) + len(missing) > self.LIMIT:
                self.ids.clear()
                missing = list(dict.fromkeys(keys))
            first = len(self.ids)
            while first + len(missing) > len(self.arr):
                self.arr = np.concatenate([self.arr, np.zeros_like(self.arr)])
            rows = itertools.chain.from_iterable(map(self.make_row, missing))
            self.arr[first : first + len(missing)] = np.fromiter(rows, dtype=self.arr.dtype, count=len(missing) * self.arr.shape[1]).reshape(len(missing), -1)
            self.ids.update(zip(missing, range(first, first + len(missing))))
            ids = list(map(self.ids.get, keys))
        return self.arr[ids]


# Post-rule kinds of a token in crfcut.segment: terminal punctuation always ends a sentence; a
# whitespace token never does when it opens the line or follows a sentence end.
_NORMAL, _ENDS, _SPACE = 0, 1, 2


def _token_kind(tok: str) -> int:
    core = tok.strip()
    return _ENDS if core.endswith(("!", ".", "?")) else _SPACE if core == "" else _NORMAL


class CrfSentenceCutter:
    """crfcut.segment, computed from cached per-token weights (see the module docstring)."""

    def __init__(self, model: CrfModel, enders: frozenset[str], starters: frozenset[str], segment_chunk, space_words):
        if model.labels != ["I", "E"]:
            raise ValueError(f"crfcut model labels are {model.labels}, expected ['I', 'E']")
        self.m = model
        self.enders, self.starters = enders, starters
        self.segment_chunk = segment_chunk  # newmm.segment with a memo
        self.bias = np.array(model.weights("bias"))
        (self.t00, self.t01), (self.t10, self.t11) = model.trans.tolist()
        # dictionary words with spaces, keyed by their first space run and its two neighbours
        self.space_keys: dict[str, list[tuple[str, int]]] = {}
        for w in space_words:
            m = _SPACE_RUN_RE.search(w)
            if m.start() == 0 or m.end() == len(w):
                raise ValueError(f"dictionary word {w!r} starts or ends with a space")
            self.space_keys.setdefault(w[m.start() - 1 : m.end() + 1], []).append((w, m.start() - 1))
        # flag weights, [kind][n][j][bits]: slot j of n-grams, the n tokens' ender (starter) flags as bits
        self.flag_weights = {
            kind: {
                n: [[model.weights(f"{kind}_{n}_{o}_{o + n}=" + "|".join(kind if bits >> (n - 1 - b) & 1 else "normal" for b in range(n))) for bits in range(2**n)] for o in range(-2, 4 - n)]
                for n in (1, 2, 3)
            }
            for kind in ("ender", "starter")
        }
        # word n-gram features the model knows, by (n, n-gram text): [(slot j, weights)]; an n-gram
        # not in here (most trigrams) gets 0.0 from all its word features
        self.word_weights: dict[tuple[int, str], list[tuple[int, tuple[float, ...]]]] = {}
        for attr, w in model.rows.items():
            name, _, text = attr.partition("=")
            parts = name.split("_")
            if parts[0] == "word" and len(parts) == 4:
                n, o = int(parts[1]), int(parts[2])
                self.word_weights.setdefault((n, text), []).append((o + 2, w))
        self._gram_rows: dict[tuple[str, ...], list[float]] = {}  # n-gram -> its features' weights, slot-major
        self._pair_bases: dict[tuple[str, str], list[float]] = {}  # (a, b) -> unigram a + bigram a|b rows
        # trigram flag weights per (ender bits, starter bits): 3 slots x 2 labels
        self._trigram_flags = [
            [[e[j][ebits][l] + s[j][sbits][l] for j in range(3) for l in (0, 1)] for sbits in range(8)]
            for e, s in [(self.flag_weights["ender"][3], self.flag_weights["starter"][3])]
            for ebits in range(8)
        ]
        self._rows = _RowTable(2 * _WINDOW_SLOTS, self._position_row)
        self._kinds: dict[str, int] = {}

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
        if "." not in line and "," not in line and ":" not in line:
            return out  # rejoin_formatted_num joins only digit runs separated by . , or :
        return rejoin_formatted_num(out)

    # ------------------------------------------------------------ scores

    def _gram_row(self, gram: tuple[str, ...]) -> list[float]:
        """Weights of every feature that reads `gram` (word, ender and starter), per slot and label."""
        row = self._gram_rows.get(gram)
        if row is None:
            n = len(gram)
            ender = starter = 0
            for t in gram:
                ender, starter = 2 * ender + (t in self.enders), 2 * starter + (t in self.starters)
            row = []
            for e, s in zip(self.flag_weights["ender"][n], self.flag_weights["starter"][n]):
                e, s = e[ender], s[starter]
                row += (e[0] + s[0], e[1] + s[1])
            for j, w in self.word_weights.get((n, "|".join(gram)), ()):
                row[2 * j] += w[0]
                row[2 * j + 1] += w[1]
            if len(self._gram_rows) >= _RowTable.LIMIT:
                self._gram_rows.clear()  # a memo, not a store: bound its memory on huge corpora
            self._gram_rows[gram] = row
        return row

    def _position_row(self, key: tuple[str, str, str]) -> list[float]:
        """What the unigram, bigram and trigram starting at one padded position add to the tokens
        that read them: slot j goes to the token j positions to the left ((5 slots) x (I, E)).

        Most trigrams are unknown to the model, so a new row is usually its (unigram + bigram)
        row, cached per pair, plus the trigram's flag weights: a few additions, no string lookups
        but one.
        """
        a, b, c = key
        base = self._pair_bases.get((a, b))
        if base is None:
            one, two = self._gram_row((a,)), self._gram_row((a, b))
            base = [x + y for x, y in zip(one, two)] + one[len(two) :]
            if len(self._pair_bases) >= _RowTable.LIMIT:
                self._pair_bases.clear()
            self._pair_bases[a, b] = base
        enders, starters = self.enders, self.starters
        tri = self._trigram_flags[4 * (a in enders) + 2 * (b in enders) + (c in enders)][4 * (a in starters) + 2 * (b in starters) + (c in starters)]
        row = [base[0] + tri[0], base[1] + tri[1], base[2] + tri[2], base[3] + tri[3], base[4] + tri[4], base[5] + tri[5], *base[6:]]
        for j, w in self.word_weights.get((3, "|".join(key)), ()):
            row[2 * j] += w[0]
            row[2 * j + 1] += w[1]
        return row

    def state_scores(self, toks: list[str]) -> np.ndarray:
        """(n, 2) CRF state scores: bias plus every feature's weight.

        Summed in another order than CRFsuite's (per n-gram position, not per feature), so scores
        may differ from its by rounding (~1e-13); decisions closer than _TIE_MARGIN go to crfcut.
        """
        n = len(toks)
        p = [_PAD, _PAD, *toks, _PAD, _PAD, _PAD, _PAD]  # two more pads: every position has a trigram
        rows = self._rows.gather(list(zip(p, p[1:], p[2:])))  # (n + 4, 10): position q, slot j, label
        # token i reads slot j of position i + j: a strided view picks that diagonal
        step = rows.strides[0]
        diag = np.ndarray((n, _WINDOW_SLOTS, 2), dtype=rows.dtype, buffer=rows, strides=(step, step + 2 * rows.itemsize, rows.itemsize))
        return diag.sum(axis=1) + self.bias

    def viterbi(self, state: np.ndarray) -> list[int] | None:
        """Best label ids (0 = I, 1 = E) as crf1dc_viterbi picks them; None on a near tie.

        Two labels, so the recursion runs on the score difference d = E - I alone: from I into I
        beats from E iff d <= t00 - t10, into E iff d <= t01 - t11 (first label wins ties).
        """
        t00, t01, t10, t11 = self.t00, self.t01, self.t10, self.t11
        into_i, into_e = t00 - t10, t01 - t11
        diffs = (state[:, 1] - state[:, 0]).tolist()
        d = diffs[0]
        seen = [d]
        for delta in diffs[1:]:
            a, b = d + t11, d + t10
            d = (a if a > t01 else t01) - (b if b > t00 else t00) + delta
            seen.append(d)
        prev = np.array(seen)
        margin = min(np.abs(prev[:-1] - into_i).min(initial=np.inf), np.abs(prev[:-1] - into_e).min(initial=np.inf), abs(seen[-1]))
        if margin < _TIE_MARGIN:
            return None
        from_e_into_i = (prev[:-1] > into_i).tolist()
        from_e_into_e = (prev[:-1] > into_e).tolist()
        lab = 1 if seen[-1] > 0 else 0
        out = [lab]
        for k in range(len(seen) - 2, -1, -1):
            lab = int(from_e_into_e[k] if lab else from_e_into_i[k])
            out.append(lab)
        out.reverse()
        return out

    def _labels(self, line: str) -> tuple[list[str], list[int], list[int]] | None:
        """Tokens, their post-rule kinds and final labels (crfcut's rules applied); None on a near tie."""
        toks = self.tokens(line)
        if not toks:
            return toks, [], []
        ids = self.viterbi(self.state_scores(toks))
        if ids is None:
            return None
        kinds = list(map(self._kinds.get, toks))
        if None in kinds:
            if len(self._kinds) >= _RowTable.LIMIT:
                self._kinds.clear()
            for t in toks:
                if t not in self._kinds:
                    self._kinds[t] = _token_kind(t)
            kinds = [self._kinds[t] for t in toks]
        ids[-1] = 1
        # crfcut's post-rules, in its order: terminal punctuation ends a sentence; a space that opens
        # the line or follows a sentence end does not.
        for idx, kind in enumerate(kinds):
            if kind == _ENDS:
                ids[idx] = 1
            elif kind == _SPACE and (idx == 0 or ids[idx - 1] == 1):
                ids[idx] = 0
        return toks, kinds, ids

    def segment(self, line: str) -> list[str]:
        """crfcut.segment(line)."""
        got = self._labels(line)
        if got is None:
            return self._fallback(line)
        toks, _, ids = got
        sentences, cur = [], ""
        for tok, lab in zip(toks, ids):
            cur += tok
            if lab and cur != "":
                sentences.append(cur)
                cur = ""
        return sentences

    def count(self, line: str) -> int:
        """How many of segment(line)'s sentences are not blank, without building them."""
        got = self._labels(line)
        if got is None:
            return sum(1 for s in self._fallback(line) if s.strip())
        _, kinds, ids = got
        n, blank = 0, True
        for kind, lab in zip(kinds, ids):
            blank = blank and kind == _SPACE
            if lab:
                n += not blank
                blank = True
        return n

    def _fallback(self, line: str) -> list[str]:
        global fallbacks
        from pythainlp.tokenize import crfcut

        fallbacks += 1
        return crfcut.segment(line)


@functools.lru_cache(maxsize=1)
def cutter() -> CrfSentenceCutter:
    """The process-wide cutter over pythainlp's shipped crfcut model (loaded on first use)."""
    from pythainlp.corpus import corpus_path, thai_words
    from pythainlp.tokenize import crfcut

    model = CrfModel(Path(corpus_path()) / crfcut._CRFCUT_DATA_FILENAME)
    # newmm's default dictionary is Trie(thai_words()), which strips each word
    space_words = sorted({w.strip() for w in thai_words() if _SPACE_RUN_RE.search(w.strip())})
    return CrfSentenceCutter(model, frozenset(crfcut._ENDERS), frozenset(crfcut._STARTERS), segment_chunk, space_words)


def segment(line: str) -> list[str]:
    """Sentences of one line, identical to pythainlp.tokenize.crfcut.segment(line)."""
    return cutter().segment(line)


def count(line: str) -> int:
    """sum(1 for s in segment(line) if s.strip()), without building the sentences."""
    return cutter().count(line)
