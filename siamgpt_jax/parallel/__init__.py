"""Named meshes, multi-host set-up and the mesh-layout planner (the logical-axis rules live in siamgpt_jax.sharding)."""
