"""zoo/dit.py against independent computations: patches by slicing, the position code by its formula written as
a loop, adaLN-Zero's identity at initialisation, and the parameter counts of facebookresearch/DiT's models."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from zoo import dit


def _net(**kw):
    return dit.DiT(**{"patch_size": 2, "hidden": 32, "depth": 1, "num_heads": 4, **kw})


def test_patchify_is_slicing_and_unpatchify_inverts_it():
    x = jax.random.normal(jax.random.key(0), (2, 8, 12, 3))
    tokens = dit.patchify(x, 4)
    assert tokens.shape == (2, 2 * 3, 4 * 4 * 3)
    for i in range(2):
        for j in range(3):  # token (i, j), row-major, is the patch's pixels in (row, column, channel) order
            np.testing.assert_array_equal(
                tokens[:, 3 * i + j], x[:, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4].reshape(2, -1)
            )
    np.testing.assert_array_equal(dit.unpatchify(tokens, 4, 8, 12), x)
    with pytest.raises(ValueError, match="patch size 3 must divide"):
        dit.patchify(x, 3)


def test_position_code_is_the_sin_cos_formula_of_column_then_row():
    dim, gh, gw = 16, 3, 5
    code = dit.sincos_position_embedding(dim, gh, gw)
    quarter = dim // 4
    for i in range(gh):
        for j in range(gw):
            want = []
            for pos in (j, i):  # the column's code, then the row's (MAE's and DiT's order)
                w = [10000.0 ** (-k / quarter) for k in range(quarter)]
                want += [np.sin(pos * wk) for wk in w] + [np.cos(pos * wk) for wk in w]
            np.testing.assert_allclose(code[i * gw + j], want, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of 4"):
        dit.sincos_position_embedding(6, 2, 2)


def test_modulate_is_shift_plus_scaled_tokens():
    x, shift, scale = np.ones((2, 3, 4)), np.arange(8.0).reshape(2, 4), np.full((2, 4), 0.5)
    np.testing.assert_allclose(dit.modulate(x, shift, scale), np.broadcast_to(1.5 + shift[:, None, :], x.shape))


@pytest.fixture(scope="module")
def conditional():
    net = _net(num_classes=10)
    x, t, y = jnp.ones((3, 8, 8, 2)), jnp.array([1.0, 10.0, 500.0]), jnp.array([0, 3, 10])
    return net, jax.jit(net.init)(jax.random.key(1), x, t, y)["params"], (x, t, y)


def test_adaln_zero_network_outputs_zeros_and_its_blocks_are_the_identity(conditional):
    net, params, (x, t, y) = conditional
    out = net.apply({"params": params}, x, t, y)
    assert out.shape == x.shape and out.dtype == jnp.float32
    np.testing.assert_array_equal(out, 0.0)
    tokens, c = jax.random.normal(jax.random.key(2), (3, 16, 32)), jax.random.normal(jax.random.key(3), (3, 32))
    block = dit.DiTBlock(32, 4)
    block_params = block.init(jax.random.key(4), tokens, c)
    np.testing.assert_array_equal(block.apply(block_params, tokens, c), tokens)


def test_every_parameter_gets_a_gradient_once_the_zero_layers_move(conditional):
    """Zero-initialised gates stop the gradient to the blocks at step 0 only: perturbed, every leaf gets one."""
    net, params, (x, t, y) = conditional
    moved = jax.tree.map(lambda p: p + 0.05 * jax.random.normal(jax.random.key(5), p.shape), params)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(net.apply({"params": p}, x, t, y) ** 2)))(moved)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        assert float(jnp.max(jnp.abs(g))) > 0, jax.tree_util.keystr(path)


def test_labels_time_and_null_label_change_the_output(conditional):
    net, params, (x, t, y) = conditional
    moved = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(6), p.shape), params)
    apply = jax.jit(lambda x, t, y: net.apply({"params": moved}, x, t, y))
    base = apply(x, t, y)
    assert float(jnp.max(jnp.abs(base - apply(x, t, (y + 1) % 10)))) > 1e-3
    assert float(jnp.max(jnp.abs(base - apply(x, t + 3.0, y)))) > 1e-3
    null = jnp.full((3,), net.null_label)
    np.testing.assert_allclose(net.apply({"params": moved}, x, t, None), apply(x, t, null), atol=1e-6)
    with pytest.raises(ValueError, match="labels need num_classes"):
        _net().init(jax.random.key(0), x, t, y)


def test_learned_variance_doubles_and_out_ch_sets_the_channels_in_bfloat16():
    x = jnp.ones((1, 4, 4, 3))
    net = _net(learned_variance=True, out_ch=1, dtype=jnp.bfloat16, patch_size=4)
    out, _ = jax.jit(net.init_with_output)(jax.random.key(0), x, jnp.zeros((1,)))
    assert out.shape == (1, 4, 4, 2) and out.dtype == jnp.float32


# facebookresearch/DiT's models.py at 32x32x4 (its 256x256 latents), 1000 classes, learn_sigma: the parameter
# count its train.py logs, sum(p.numel() for p in model.parameters()), its frozen position code included. DiT-XL/2's
# 675,129,632 is the figure DiT's logs report; the others follow from the same layers (_dit_count).
DIT_COUNTS = {"S": 32_963_360, "B": 130_512_416, "XL": 675_129_632}


def _dit_count(hidden, depth, p=2, c=4, tokens=256, classes=1000, frequency=256):
    """DiT's layers counted by hand: patch conv, position code, time MLP, label table, blocks, final layer."""
    block = (3 * hidden * hidden + 3 * hidden) + (hidden * hidden + hidden)  # qkv and proj
    block += 2 * 4 * hidden * hidden + 4 * hidden + hidden + 6 * hidden * hidden + 6 * hidden  # MLP, adaLN
    final = 2 * hidden * hidden + 2 * hidden + hidden * p * p * 2 * c + p * p * 2 * c
    embed = p * p * c * hidden + hidden + tokens * hidden + frequency * hidden + hidden + hidden * hidden + hidden
    return embed + (classes + 1) * hidden + depth * block + final


@pytest.mark.parametrize("size", ["S", "B", "XL"])
def test_parameter_counts_of_dit_s2_b2_xl2_at_32x32_are_the_published_ones(size):
    hidden, depth, heads = dit.CONFIGS[size]
    net = dit.DiT(2, hidden, depth, heads, num_classes=1000, learned_variance=True)
    assert dit.num_parameters(net, (32, 32, 4)) == DIT_COUNTS[size] == _dit_count(hidden, depth)
    assert dit.num_parameters(net, (32, 32, 4), with_position=False) == DIT_COUNTS[size] - 256 * hidden
