"""Reading traced programs in tests."""

import jax
import jax.extend.core


def dot_contracting_dim_counts(fn, *args) -> list[int]:
    """How many dims each dot_general in fn's jaxpr (nested ones included) contracts."""
    counts = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                (lhs_contract, _), _ = eqn.params["dimension_numbers"]
                counts.append(len(lhs_contract))
            for sub in jax.extend.core.jaxprs_in_params(eqn.params):
                walk(sub)

    walk(jax.make_jaxpr(fn)(*args).jaxpr)
    return counts
