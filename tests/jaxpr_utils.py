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


def dot_counts_and_result(fn, *args, mesh_axes: dict | None = None):
    """(dot_contracting_dim_counts of fn, jit(fn)(*args)), both traced under a mesh of `mesh_axes`
    (MeshConfig sizes, default rules) or with no mesh when it is None."""
    from contextlib import nullcontext

    from siamgpt_jax.parallel.mesh import MeshConfig, make_mesh
    from siamgpt_jax.sharding import use_mesh_rules

    mesh_rules = nullcontext() if mesh_axes is None else use_mesh_rules(make_mesh(MeshConfig(**mesh_axes)))
    with mesh_rules:
        return dot_contracting_dim_counts(fn, *args), jax.jit(fn)(*args)
