"""The Monte Carlo engine of the shared core: grid stepper, ensembles, driver, statistics."""
