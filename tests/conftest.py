import jax

# Numerics are checked to 1e-6 and tighter: tests run in float64.
jax.config.update("jax_enable_x64", True)
# Silent broadcasting between ranks hides shape bugs: make it an error in the tests.
jax.config.update("jax_numpy_rank_promotion", "raise")
