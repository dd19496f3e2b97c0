"""Pure JAX/Flax model code: math as functions, networks as linen modules. No I/O."""
