"""Named meshes and multi-host set-up, below the trainer (the logical-axis rules live in siamgpt_jax.sharding; the layout planner in siamgpt_jax.layout)."""
