"""zoo.layers: the resolution arithmetic the conv encoders and decoders share, and the conv trunk of the encoders."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import pytest

from zoo import layers


def test_conv_levels_halve_while_even_and_at_least_4():
    assert [layers.conv_levels(s, s) for s in (8, 28, 32, 7, 64)] == [1, 2, 3, 0, 4]
    assert layers.conv_levels(32, 12) == 1  # 16x6, then 6 would become 3 < 4
    with pytest.raises(ValueError, match="positive"):
        layers.conv_levels(0, 8)


def test_level_channels_repeat_the_last_width():
    assert [layers.level_channels((8, 16), i) for i in range(4)] == [8, 16, 16, 16]


@pytest.mark.parametrize(
    "shape, channels, num_levels, expected",
    [
        ((28, 28, 1), (4, 8, 16), None, (2, (7, 7, 16), 1)),
        ((32, 32, 3), (4, 8), None, (3, (4, 4, 8), 3)),
        ((8, 12, 1), (4,), 2, (2, (2, 3, 4), 1)),
    ],
)
def test_decoder_base_is_the_smallest_map(shape, channels, num_levels, expected):
    assert layers.decoder_base("Net", shape, channels, num_levels) == expected


def test_decoder_base_refuses_shapes_it_cannot_halve():
    with pytest.raises(ValueError, match=r"Net: image 12x12 is not divisible by 2\^num_levels=8"):
        layers.decoder_base("Net", (12, 12, 1), (4,), 3)
    with pytest.raises(ValueError, match=r"Net: image_shape must be \(H, W, C\)"):
        layers.decoder_base("Net", (8, 8), (4,))


def test_num_groups_divides_the_channels():
    assert [layers.num_groups(c) for c in (1, 6, 32, 48, 96)] == [1, 6, 32, 24, 32]


def test_conv_trunk_layers_belong_to_the_calling_module():
    """The trunk's convs are named in the caller, as if written there (Conv_0, Downsample_0, ...): the parameter
    trees of ConvEncoder and DCDiscriminator, and so their checkpoints, do not depend on it being shared."""

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(layers.conv_trunk("Net", x, (4, 8), None, nn.relu))

    x = jnp.zeros((2, 16, 16, 1))
    params = Net().init(jax.random.key(0), x)["params"]
    assert sorted(params) == ["Conv_0", "Dense_0", "Downsample_0", "Downsample_1"]  # 16 -> 8 -> 4: two halvings
    assert params["Downsample_1"]["Conv_0"]["kernel"].shape == (3, 3, 8, 8)  # channels (4, 8): the last repeats
    assert params["Dense_0"]["kernel"].shape == (4 * 4 * 8, 3)  # flattened
    with pytest.raises(ValueError, match=r"Net: x must be NHWC \[B, H, W, C\], got shape \(16, 16, 1\)"):
        Net().init(jax.random.key(0), x[0])
