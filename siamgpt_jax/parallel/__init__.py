"""Named meshes, logical-axis sharding rules, multi-host set-up and the mesh-layout planner."""
