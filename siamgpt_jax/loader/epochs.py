"""How many epochs of each data source a run gets, before any GPU hour is spent.

The loader mixes its sources by *record*: a draw comes from source i with probability
w_i / sum(w) (Grain's MapDataset.mix), each source reshuffled and repeated. A step takes
global_batch rows of seq_len tokens, filled by packing whole conversations (cut at seq_len, or
dropped when data.too_long is "drop"). So, with full packing (an upper bound: the packer leaves
a few percent padding, docs/benchmarks/loader.md):

    records drawn  R   = steps * global_batch * seq_len * packing / sum_i p_i * mean_i
    from source i  R_i = p_i * R,   epochs_i = R_i / N_i

where p_i = w_i / sum(w), N_i the source's training records and mean_i their mean length after
the cut. `plan_epochs` computes this from exact token counts (token_counts.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from siamgpt_jax.loader.token_counts import TokenCounts, count_source

if TYPE_CHECKING:
    from siamgpt_jax.loader.pipeline import LoaderConfig


@dataclass(frozen=True)
class SourcePlan:
    path: str
    stream: str | None
    share: float  # p_i: the fraction of drawn records that come from this source
    records: int  # N_i: training records (after the stream filter, held-out split and drops)
    mean_tokens: float  # per record, after the seq_len cut
    records_drawn: float
    epochs: float
    tokens_drawn: float
    trainable_drawn: float


@dataclass(frozen=True)
class SourceStats:
    """What the plan needs of one source: its training records' lengths after the cut."""

    records: int
    tokens: float  # sum of lengths after the cut
    trainable: float  # sum of loss targets after the cut (approximate when cut: see source_stats)


def source_stats(counts: TokenCounts, cfg: "LoaderConfig", stream: str | None) -> SourceStats:
    keep = counts.select(stream, "train", cfg.eval_fraction)
    total, trainable = counts.total[keep], counts.trainable[keep]
    if cfg.too_long == "drop":
        fits = total <= cfg.seq_len
        total, trainable = total[fits], trainable[fits]
    cut = np.minimum(total, cfg.seq_len)
    # a cut record keeps at most what is left of its targets; scaled by the kept share of the record
    kept_targets = np.minimum(trainable, np.floor(trainable * cut / np.maximum(total, 1)))
    return SourceStats(int(len(total)), float(cut.sum()), float(kept_targets.sum()))


def plan_epochs(sources: list[tuple[str, str | None, float, SourceStats]], *, steps: int, global_batch: int,
                seq_len: int, packing: float = 1.0) -> list[SourcePlan]:
    """One SourcePlan per (path, stream, weight, stats); see the module docstring for the formula."""
    weights = np.asarray([w for _, _, w, _ in sources], np.float64)
    if not len(sources) or (weights <= 0).any():
        raise ValueError("every data source needs a weight > 0")
    shares = weights / weights.sum()
    for (path, stream, _, st) in sources:
        if st.records == 0:
            raise ValueError(f"data source {path} (stream={stream}) has no training records")
    means = np.asarray([st.tokens / st.records for *_, st in sources])
    drawn = steps * global_batch * seq_len * packing / float((shares * means).sum())
    out = []
    for (path, stream, _, st), p, mean in zip(sources, shares, means):
        r = p * drawn
        out.append(SourcePlan(path, stream, float(p), st.records, float(mean), float(r), float(r / st.records),
                              float(r * mean), float(r * st.trainable / st.records)))
    return out


def plan_for_config(cfg: "LoaderConfig", tokenizer, *, steps: int, global_batch: int, progress: bool = True) -> list[SourcePlan]:
    """Count (or read the cached counts of) every source of the data config and plan the run."""
    counted: dict[str, TokenCounts] = {}
    sources = []
    for sc in cfg.sources:
        if sc.path not in counted:
            counted[sc.path] = count_source(sc.path, tokenizer, cfg, progress=progress)
        sources.append((sc.path, sc.stream, sc.weight, source_stats(counted[sc.path], cfg, sc.stream)))
    return plan_epochs(sources, steps=steps, global_batch=global_batch, seq_len=cfg.seq_len)


def format_plan(plans: list[SourcePlan], *, steps: int, global_batch: int, seq_len: int) -> str:
    """A table a person reads before starting the run."""
    budget = steps * global_batch * seq_len
    lines = [f"data plan: {steps:,} steps x {global_batch} rows x {seq_len:,} tokens = {budget:,} token slots "
             f"(full packing; epochs are an upper bound)"]
    lines.append(f"  {'source':<40} {'stream':<11} {'share':>6} {'records':>10} {'mean tok':>9} {'drawn':>12} {'epochs':>7}")
    for p in plans:
        lines.append(f"  {p.path[-40:]:<40} {str(p.stream or '*'):<11} {p.share:6.1%} {p.records:10,} {p.mean_tokens:9.1f} "
                     f"{p.records_drawn:12,.0f} {p.epochs:7.2f}")
    return "\n".join(lines)
