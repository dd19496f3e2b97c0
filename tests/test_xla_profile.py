"""benchmarks.xla_profile: the op names of a compiled step map to its HLO, layers and kinds add up to the thunks."""

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks import xla_profile
from tests.configs import table_rows


class _Net(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(4)(nn.relu(nn.Dense(256)(x)))


def test_layer_of_reads_pass_module_and_primitive():
    gn = "jit(step)/jvp(UNet)/ResBlock_3/GroupNorm_0/reduce_sum"
    assert xla_profile.layer_of(gn) == "forward GroupNorm/reduce_sum"
    assert xla_profile.layer_of("jit(step)/transpose(jvp(UNet))/ResBlock_1/Conv_0/conv_general_dilated") == (
        "backward Conv/conv_general_dilated"
    )
    assert xla_profile.layer_of("jit(step)/jvp(UNet)/ResBlock_13/jit(silu)/mul") == "forward ResBlock/silu"
    assert xla_profile.layer_of("jit(step)/add") == "forward (no module)/add"
    assert xla_profile.layer_of("") == "(no metadata)"


def test_kind_of_names_libraries_and_fusions():
    assert xla_profile.kind_of("ynn_fusion.3", "fusion") == "YNNPACK fusion (conv/matmul)"
    assert xla_profile.kind_of("convolution.7", "convolution") == "XLA convolution (Eigen)"
    assert xla_profile.kind_of("transpose_copy_fusion.2", "fusion") == "copy/transpose"
    assert xla_profile.kind_of("add_multiply_fusion", "fusion") == "elementwise fusion"


def test_profile_of_a_small_network_attributes_every_thunk():
    net = _Net()
    x = jnp.ones((512, 256))
    params = net.init(jax.random.key(0), x)
    loss = lambda p: jnp.sum(net.apply(p, x) ** 2)
    compiled = jax.jit(jax.grad(loss)).lower(params).compile()
    call = lambda: jax.block_until_ready(compiled(params))
    instructions = xla_profile.hlo_instructions(compiled.as_text())
    times, wall = xla_profile.profile_ops(call, calls=2)
    ours = {n: us for n, us in times.items() if n in instructions}
    assert ours and wall > 0  # the trace's thunk events are the module's instructions
    total = sum(ours.values())
    for by in ("kind", "layer"):
        groups = xla_profile.group(times, instructions, by)
        assert abs(sum(us for _, us, _ in groups) - total) <= 1e-6 * total
        assert sum(n for _, _, n in groups) == len(ours)
    layers = {g for g, _, _ in xla_profile.group(times, instructions, "layer")}
    assert any(g.startswith("forward Dense/") for g in layers) and any(g.startswith("backward Dense/") for g in layers)

    text = xla_profile.report(compiled, call, calls=1, top=5)
    rows = table_rows(text, "| kind |")
    assert 0 < len(rows) <= 5 and all(float(r["ms/call"]) >= 0 for r in rows)
    assert len(table_rows(text, "| thunk |")) == min(5, len(ours))


def test_self_times_leave_out_nested_events_per_thread():
    ev = lambda name, ts, dur, tid=1: {"ph": "X", "name": name, "ts": ts, "dur": dur, "pid": 0, "tid": tid}
    events = [
        ev("while", 0, 100),
        ev("body_a", 10, 30),
        ev("inner", 15, 5),
        ev("body_b", 50, 20),
        ev("after", 100, 7),  # starts where the loop ends: not nested
        ev("other_thread", 20, 50, tid=2),
        {"ph": "M", "name": "thread_name"},
    ]
    got = xla_profile.self_times(events, calls=2)
    assert got == {"while": 25.0, "body_a": 12.5, "inner": 2.5, "body_b": 10.0, "after": 3.5, "other_thread": 25.0}
