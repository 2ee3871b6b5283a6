"""Noise of the shared core: jump-size laws, compound Poisson processes and counter-based paths."""
