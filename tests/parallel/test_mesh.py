import jax
import pytest

from siamgpt_jax.config import ConfigError, from_dict, load
from siamgpt_jax.parallel.mesh import MeshConfig, MeshError, make_mesh, resolve
from siamgpt_jax.sharding import DEFAULT_RULES, ShardingRuleError, local_shape, validate_rules


def test_fill_axis_takes_the_remaining_devices():
    mesh = make_mesh(MeshConfig(fsdp=4))
    assert mesh.axis_names == ("data", "fsdp", "tensor", "sequence")
    assert dict(mesh.shape) == {"data": 2, "fsdp": 4, "tensor": 1, "sequence": 1}
    assert mesh.devices.size == 8


def test_all_explicit_sizes():
    mesh = make_mesh(MeshConfig(data=1, fsdp=2, tensor=2, sequence=2))
    assert dict(mesh.shape) == {"data": 1, "fsdp": 2, "tensor": 2, "sequence": 2}


def test_hosts_own_contiguous_device_blocks_along_the_dcn_axis():
    # 2 simulated hosts x 4 devices: data spans hosts, fsdp stays inside one.
    mesh = make_mesh(MeshConfig(fsdp=4, dcn={"data": -1}), num_hosts=2)
    assert dict(mesh.shape)["data"] == 2
    ids = [[d.id for d in row.flat] for row in mesh.devices]
    assert sorted(ids[0]) == [0, 1, 2, 3] and sorted(ids[1]) == [4, 5, 6, 7]


def test_paper_layout_is_one_line_and_resolves_for_8x8():
    cfg = from_dict(MeshConfig, {"fsdp": 8, "dcn": {"data": -1}})
    ms = resolve(cfg, num_devices=64, num_hosts=8)
    assert ms.shape == {"data": 8, "fsdp": 8, "tensor": 1, "sequence": 1}
    assert ms.dcn == {"data": 8, "fsdp": 1, "tensor": 1, "sequence": 1}
    assert ms.ici == {"data": 1, "fsdp": 8, "tensor": 1, "sequence": 1}


def test_sizes_that_do_not_multiply_to_the_device_count():
    with pytest.raises(MeshError, match="multiply to 6, but there are 8"):
        make_mesh(MeshConfig(data=3, fsdp=2))
    with pytest.raises(MeshError, match="does not divide 8"):
        make_mesh(MeshConfig(fsdp=3))


def test_two_fill_axes_are_rejected():
    with pytest.raises(ConfigError, match="at most one axis may be -1"):
        MeshConfig(data=-1, fsdp=-1)


def test_bad_axis_sizes_and_dcn_entries():
    with pytest.raises(ConfigError, match="mesh.tensor"):
        MeshConfig(tensor=0)
    with pytest.raises(ConfigError, match="mesh.dcn.fdsp: unknown mesh axis"):
        MeshConfig(dcn={"fdsp": 2})


def test_rule_with_unknown_mesh_axis_is_an_error():
    with pytest.raises(ConfigError, match="mesh axis 'tensr'"):
        from_dict(MeshConfig, {"rules": {"mlp": ["tensr"]}})
    with pytest.raises(ShardingRuleError, match="not one of the mesh axes"):
        validate_rules({"mlp": ("model",)})


def test_rule_for_unknown_logical_axis_suggests_the_nearest():
    with pytest.raises(ConfigError, match="did you mean 'embed'"):
        MeshConfig(rules={"embd": ("fsdp",)})


def test_rules_merge_over_defaults_and_are_hashable():
    cfg = load(MeshConfig, None, ["fsdp=4", "rules.embed=[fsdp, tensor]", "dcn.data=-1"])
    assert cfg.rules["embed"] == ("fsdp", "tensor")
    assert cfg.rules["mlp"] == DEFAULT_RULES["mlp"]
    assert hash(cfg) == hash(from_dict(MeshConfig, {"fsdp": 4, "dcn": {"data": -1},
                                                    "rules": {"embed": ("fsdp", "tensor")}}))


def test_axis_spanning_hosts_must_divide_and_fit_the_host_count():
    with pytest.raises(MeshError, match="asked to span 2 hosts"):
        resolve(MeshConfig(data=1, fsdp=8, dcn={"data": -1}), 8, num_hosts=2)
    with pytest.raises(MeshError, match=r"host counts \(8 hosts\).*multiply to 3"):
        resolve(MeshConfig(data=8, fsdp=8, dcn={"data": 3}), 64, num_hosts=8)
    with pytest.raises(MeshError, match="cannot be split evenly over 3 hosts"):
        resolve(MeshConfig(), 8, num_hosts=3)


def test_local_shape_uses_rules_and_divisibility():
    sizes = {"data": 1, "fsdp": 4, "tensor": 2, "sequence": 1}
    assert local_shape(("layers", "embed", "q_heads", "head_dim"), (2, 64, 4, 16), sizes, DEFAULT_RULES) == (2, 16, 2, 16)
    # 1 KV head cannot be split over tensor=2: it stays whole
    assert local_shape(("layers", "embed", "kv_heads", "head_dim"), (2, 64, 1, 16), sizes, DEFAULT_RULES) == (2, 16, 1, 16)
    mesh = make_mesh(MeshConfig(fsdp=4, tensor=2))
    assert local_shape(("vocab", "embed"), (256, 64), mesh, DEFAULT_RULES) == (128, 16)
    assert jax.device_count() == 8
