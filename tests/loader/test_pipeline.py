import json

import numpy as np
import pytest

from siamgpt_jax.config import ConfigError
from siamgpt_jax.loader.chat import ChatFormatError
from siamgpt_jax.loader.pipeline import BATCH_KEYS, LoaderConfig, SourceConfig, loader_config_from_dict, make_loader

SEQ = 1024


def cfg_for(path, **kw):
    kw.setdefault("seq_len", SEQ)
    kw.setdefault("packing_bins", 8)
    return LoaderConfig(sources=(SourceConfig(str(path)),), **kw)


def take(it, n):
    return [next(it) for _ in range(n)]


def drain(loader):
    return list(iter(loader))


def segments(batch):
    """Yield (inputs, targets, loss_mask, positions) per packed segment, checking layout on the way."""
    for r in range(batch["inputs"].shape[0]):
        seg = batch["segment_ids"][r]
        n_used = int(np.count_nonzero(seg))
        # Segments are contiguous runs 1, 2, ..., k followed by padding only.
        assert (seg[n_used:] == 0).all() and (seg[:n_used] > 0).all()
        assert (np.diff(seg[:n_used]) >= 0).all() and (np.diff(seg[:n_used]) <= 1).all()
        assert (batch["loss_mask"][r][n_used:] == 0).all() and (batch["inputs"][r][n_used:] == 0).all()
        for s in range(1, int(seg.max(initial=0)) + 1):
            idx = np.nonzero(seg == s)[0]
            yield tuple(batch[k][r][idx] for k in ("inputs", "targets", "loss_mask", "positions"))


def test_batch_shapes_and_dtypes(tok, corpus):
    b = next(iter(make_loader(cfg_for(corpus), tok, batch_size=3, seed=0, process_index=0, process_count=1)))
    assert sorted(b) == sorted(BATCH_KEYS)
    for k in BATCH_KEYS:
        assert b[k].shape == (3, SEQ)
    assert b["loss_mask"].dtype == np.float32 and all(b[k].dtype == np.int32 for k in BATCH_KEYS if k != "loss_mask")


def test_packing_invariants(tok, corpus, encoded):
    loader = make_loader(cfg_for(corpus), tok, batch_size=2, seed=5, process_index=0, process_count=1, num_epochs=1)
    seen = []
    for batch in drain(loader):
        for inputs, targets, loss_mask, positions in segments(batch):
            rec, ids, mask = encoded[tuple(inputs)]  # KeyError = a token lost, added or moved
            seen.append(rec["id"])
            assert (positions == np.arange(len(ids))).all()  # positions restart per segment
            assert (targets[:-1] == inputs[1:]).all() and targets[-1] == 0
            # Loss only where the *target* is a trained assistant token; never on the last token.
            assert (loss_mask == np.asarray(mask[1:] + [0], np.float32)).all()
    assert sorted(seen) == sorted(r["id"] for r, _, _ in encoded.values())  # each record exactly once
    st = loader.stats
    assert st["records"] == 40 and st["segments"] == 40 and st["truncated"] == 0
    assert st["tokens"] == sum(len(i) for _, i, _ in encoded.values())


def test_same_seed_same_batches(tok, corpus):
    def first(seed):
        return take(iter(make_loader(cfg_for(corpus), tok, batch_size=2, seed=seed, process_index=0, process_count=1)), 3)

    a, b, c = first(1), first(1), first(2)
    assert all((x[k] == y[k]).all() for x, y in zip(a, b) for k in BATCH_KEYS)
    assert any((x["inputs"] != z["inputs"]).any() for x, z in zip(a, c))


@pytest.mark.parametrize("num_workers", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_restore_resumes_exactly(tok, corpus, num_workers):
    cfg = cfg_for(corpus, num_workers=num_workers)
    loader = make_loader(cfg, tok, batch_size=2, seed=0, process_index=0, process_count=1)
    it = iter(loader)
    take(it, 3)
    state = json.loads(json.dumps(it.get_state()))  # must survive JSON (orbax stores it so)
    expected = take(it, 6)  # crosses an epoch boundary (40 records ~ 14 rows of 1024)
    fresh = make_loader(cfg, tok, batch_size=2, seed=0, process_index=0, process_count=1)
    it2 = iter(fresh)
    it2.set_state(state)
    got = take(it2, 6)
    for x, y in zip(expected, got):
        for k in BATCH_KEYS:
            np.testing.assert_array_equal(x[k], y[k])
    # the counters match an uninterrupted iterator's: the packer's replay does not count records twice
    assert it2.stats.counts == it.stats.counts
    for i in (it, it2):
        i.close()


@pytest.mark.slow
def test_batches_do_not_depend_on_the_number_of_workers(tok, corpus):
    batches = {}
    for workers in (0, 2):
        it = iter(make_loader(cfg_for(corpus, num_workers=workers), tok, batch_size=2, seed=0, process_index=0, process_count=1))
        batches[workers] = take(it, 6)  # crosses an epoch boundary
        it.close()
    for x, y in zip(batches[0], batches[2]):
        for k in BATCH_KEYS:
            np.testing.assert_array_equal(x[k], y[k])


def test_two_process_shards_disjoint_and_complete(tok, corpus, encoded):
    ids_per_process = []
    for p in range(2):
        loader = make_loader(cfg_for(corpus), tok, batch_size=2, seed=9, process_index=p, process_count=2, num_epochs=1)
        ids_per_process.append([encoded[tuple(s[0])][0]["id"] for b in drain(loader) for s in segments(b)])
    a, b = (set(x) for x in ids_per_process)
    assert len(a) == len(ids_per_process[0]) and len(b) == len(ids_per_process[1])
    assert not a & b
    assert a | b == {r["id"] for r, _, _ in encoded.values()}


def test_streams_mix_by_weight(tok, corpus, encoded):
    cfg = LoaderConfig(sources=(SourceConfig(str(corpus), 3.0, "systemchat"), SourceConfig(str(corpus), 1.0, "autoif")),
                       seq_len=SEQ, packing_bins=8)
    it = iter(make_loader(cfg, tok, batch_size=4, seed=0, process_index=0, process_count=1))
    streams = [encoded[tuple(s[0])][0]["stream"] for b in take(it, 10) for s in segments(b)]
    ratio = streams.count("systemchat") / max(1, streams.count("autoif"))
    assert len(streams) > 40 and 2.2 < ratio < 4.0


def test_eval_split_is_disjoint_and_covering(tok, corpus, encoded):
    def ids(split):
        cfg = cfg_for(corpus, eval_fraction=0.25)
        loader = make_loader(cfg, tok, batch_size=2, seed=0, split=split, process_index=0, process_count=1, num_epochs=1)
        return [encoded[tuple(s[0])][0]["id"] for b in drain(loader) for s in segments(b)]

    train, held = ids("train"), ids("eval")
    assert held and not set(train) & set(held) and len(train) + len(held) == 40


@pytest.mark.parametrize("too_long", ["truncate", "drop"])
def test_too_long_records_are_counted(tok, corpus, encoded, too_long):
    seq = 300
    n_long = sum(len(i) > seq for _, i, _ in encoded.values())
    assert 0 < n_long < 40
    loader = make_loader(cfg_for(corpus, seq_len=seq, too_long=too_long), tok, batch_size=2, seed=0,
                         process_index=0, process_count=1, num_epochs=1)
    segs = [s for b in drain(loader) for s in segments(b)]
    st = loader.stats
    if too_long == "drop":
        assert st["dropped"] == n_long and len(segs) == 40 - n_long and st["truncated"] == 0
    else:
        assert st["truncated"] == n_long and len(segs) == 40 and st["dropped"] == 0
        assert max(len(s[0]) for s in segs) == seq


def write_lines(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records))
    return path


GOOD = {"id": "ok-1", "stream": "autoif", "messages": [{"role": "user", "content": "สวัสดี"},
                                                        {"role": "assistant", "content": "สวัสดีครับ"}]}


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"id": "no-asst", "messages": [{"role": "user", "content": "hi"}]}, "no assistant turn"),
        ({"id": "bad-role", "messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]},
         "unknown role 'tool'"),
        ({"id": "empty", "messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]},
         "empty content"),
    ],
)
def test_bad_record_error_names_file_line_and_id(tok, tmp_path, bad, match):
    path = write_lines(tmp_path / "v.jsonl", [GOOD, GOOD, bad, GOOD])
    loader = make_loader(cfg_for(path), tok, batch_size=1, seed=0, process_index=0, process_count=1,
                         num_epochs=1)
    with pytest.raises(ChatFormatError, match=match) as e:
        drain(loader)
    assert f"{path}:3 (id={bad['id']})" in str(e.value)


def test_invalid_json_line_is_named(tok, tmp_path):
    path = write_lines(tmp_path / "v.jsonl", [GOOD, "{oops"])
    with pytest.raises(ValueError, match=r"v.jsonl:2: invalid JSON"):
        make_loader(LoaderConfig(sources=(SourceConfig(str(path), stream="autoif"),)), tok, batch_size=1, seed=0,
                    process_index=0, process_count=1)


def test_config_from_yaml_dict(corpus):
    cfg = loader_config_from_dict({"sources": [{"path": str(corpus), "weight": 2, "stream": "autoif"}],
                                   "seq_len": 1024, "too_long": "drop"})
    assert cfg.sources == (SourceConfig(str(corpus), 2.0, "autoif"),) and cfg.seq_len == 1024
    with pytest.raises(ConfigError, match="data.seq_lne.*seq_len"):
        loader_config_from_dict({"seq_lne": 5})
    with pytest.raises(ConfigError, match="too_long"):
        loader_config_from_dict({"too_long": "cut"})
