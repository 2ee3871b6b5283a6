"""Shared jaxtyping aliases."""

from typing import TypeAlias

from jaxtyping import Array, ArrayLike, Float

Scalar: TypeAlias = Float[Array, ""]
ScalarLike: TypeAlias = float | Float[ArrayLike, ""]
PerProducer: TypeAlias = Float[Array, " n"]
PerProducerLike: TypeAlias = Float[ArrayLike, " n"]
