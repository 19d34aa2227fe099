"""Choosing the next token from logits, per batch row: greedy, temperature, top-k, top-p.

Every row has its own settings (arrays [B]) and its own PRNG key, folded with the step number, so
a request's tokens depend on its seed and its logits only, never on what else is in the batch.
The reported logprob is the chosen token's log-probability under the model's raw distribution
(log_softmax of the logits, before temperature or filtering), as vLLM reports by default.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

NEG_INF = -jnp.inf


def filter_logits(logits: jnp.ndarray, top_k: jnp.ndarray, top_p: jnp.ndarray) -> jnp.ndarray:
    """Set every token outside the row's top-k / top-p set to -inf. logits [B, V] (already
    temperature-scaled); top_k [B] int (0 = off); top_p [B] float (1.0 = off).

    top-p keeps the smallest prefix of the tokens sorted by probability whose mass reaches top_p
    (the token that crosses it included, so at least one token is always kept).
    """
    V = logits.shape[-1]
    order = jnp.argsort(-logits, axis=-1)  # descending
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    rank = jnp.arange(V)[None, :]
    k = jnp.where(top_k > 0, top_k, V)[:, None]
    keep = rank < k
    probs = jax.nn.softmax(jnp.where(keep, sorted_logits, NEG_INF), axis=-1)
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    # top_p 1.0 is off: in float32 the mass reaches 1.0 before the last tiny tokens, which would go
    keep &= (mass_before < top_p[:, None]) | (top_p[:, None] >= 1.0)
    keep_sorted = keep.at[:, 0].set(True)
    # back to vocabulary order: the rank of each token is where `order` puts it
    keep_vocab = jnp.zeros_like(keep_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(keep_sorted)
    return jnp.where(keep_vocab, logits, NEG_INF)


def sample(
    logits: jnp.ndarray,
    keys: jnp.ndarray,
    step: jnp.ndarray,
    temperature: jnp.ndarray,
    top_k: jnp.ndarray,
    top_p: jnp.ndarray,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The next token [B] int32 and its raw logprob [B] float32.

    logits [B, V] float32; keys [B, 2] uint32 (one PRNGKey per row, from its seed); step: int
    scalar. temperature 0 is greedy (argmax; the filters do not matter then).
    """
    logits = logits.astype(jnp.float32)
    greedy = jnp.argmax(logits, axis=-1).astype(jnp.int32)
    t = jnp.where(temperature > 0, temperature, 1.0)[:, None]
    scaled = logits / t
    needs_filter = jnp.any((temperature > 0) & ((top_k > 0) | (top_p < 1.0)))
    # the full sort over the vocabulary runs only when some row asks for top-k or top-p
    scaled = jax.lax.cond(needs_filter, lambda x: filter_logits(x, top_k, top_p), lambda x: x, scaled)
    step_keys = jax.vmap(lambda k: jax.random.fold_in(k, step))(keys)
    drawn = jax.vmap(jax.random.categorical)(step_keys, scaled).astype(jnp.int32)
    token = jnp.where(temperature > 0, drawn, greedy)
    logprob = jnp.take_along_axis(jax.nn.log_softmax(logits, axis=-1), token[:, None], axis=-1)[:, 0]
    return token, logprob


def row_keys(seeds) -> jnp.ndarray:
    """[B, 2] uint32 PRNG keys, one per row's seed."""
    return jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds, jnp.uint32))
