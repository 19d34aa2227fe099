"""top-k and top-p never let a token outside their set through (a property test over logits)."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from siamgpt_jax.generate.sampling import filter_logits, row_keys, sample

V = 12
_filter = jax.jit(filter_logits)
_sample = jax.jit(sample)


def allowed(logits: np.ndarray, top_k: int, top_p: float) -> np.ndarray:
    """The widest set the rules allow (ties at a cut all count as inside), computed in numpy."""
    order = np.argsort(-logits, kind="stable")
    ok = np.ones(V, bool)
    if top_k:
        ok &= logits >= logits[order[top_k - 1]]
    kept = np.where(ok, logits, -np.inf)
    p = np.exp(kept - kept.max())
    p /= p.sum()
    sp = p[order]
    mass_before = np.cumsum(sp) - sp
    # the token that crosses top_p is kept; 1e-5 of slack for float32 sums at the boundary
    n = max(1, int(np.sum(mass_before < top_p + 1e-5)))
    threshold = logits[order[min(n, V) - 1]]
    return ok & (logits >= threshold - 1e-6 * max(1.0, abs(threshold)))


logits_st = arrays(np.float32, (V,), elements=st.floats(-8, 8, width=32))


@settings(max_examples=150, deadline=None)
@given(logits=logits_st, top_k=st.integers(0, V), top_p=st.floats(0.05, 1.0), seed=st.integers(0, 2**31))
def test_filtered_and_sampled_tokens_stay_in_the_allowed_set(logits, top_k, top_p, seed):
    kept = np.asarray(_filter(jnp.asarray(logits[None]), jnp.asarray([top_k]), jnp.asarray([top_p], jnp.float32)))[0]
    ok = allowed(logits, top_k, top_p)
    assert np.isfinite(kept).any()  # never an empty set
    assert not (np.isfinite(kept) & ~ok).any(), (kept, ok)
    token, logprob = _sample(jnp.asarray(logits[None]), row_keys([seed]), jnp.int32(3), jnp.asarray([1.0], jnp.float32),
                             jnp.asarray([top_k]), jnp.asarray([top_p], jnp.float32))
    assert ok[int(token[0])] and np.isfinite(kept[int(token[0])])
    assert float(logprob[0]) <= 0


def test_top_k_1_and_temperature_0_are_greedy_and_seeds_repeat():
    logits = jnp.asarray(np.random.RandomState(0).randn(4, V).astype(np.float32))
    greedy = np.asarray(logits).argmax(-1)
    keys = row_keys([1, 2, 3, 4])
    ones = jnp.ones(4, jnp.float32)
    t0, _ = _sample(logits, keys, jnp.int32(0), 0 * ones, jnp.zeros(4, jnp.int32), ones)
    k1, _ = _sample(logits, keys, jnp.int32(0), ones, jnp.ones(4, jnp.int32), ones)
    assert (np.asarray(t0) == greedy).all() and (np.asarray(k1) == greedy).all()
    draws = [np.asarray(_sample(logits, keys, jnp.int32(s), 2 * ones, jnp.zeros(4, jnp.int32), ones)[0]) for s in range(20)]
    again = [np.asarray(_sample(logits, keys, jnp.int32(s), 2 * ones, jnp.zeros(4, jnp.int32), ones)[0]) for s in range(20)]
    assert all((a == b).all() for a, b in zip(draws, again))
    assert len({tuple(d) for d in draws}) > 1  # the step number changes the draw


def test_filters_cut_where_they_should():
    logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05] + [1e-9] * (V - 4)], jnp.float32))
    kept = lambda k, p: np.isfinite(np.asarray(_filter(logits, jnp.asarray([k]), jnp.asarray([p], jnp.float32)))[0])
    assert kept(2, 1.0).nonzero()[0].tolist() == [0, 1]
    assert kept(0, 0.5).nonzero()[0].tolist() == [0]  # 0.5 reached by the first token
    assert kept(0, 0.7).nonzero()[0].tolist() == [0, 1]
    assert kept(0, 0.9).nonzero()[0].tolist() == [0, 1, 2]
    assert kept(3, 0.99).nonzero()[0].tolist() == [0, 1, 2]
    assert kept(0, 1.0).all()
