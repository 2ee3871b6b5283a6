"""Compile time measured apart from run time, from JAX's own monitoring events."""

import jax

_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


class CompileTimer:
    """Seconds JAX spends tracing, lowering and compiling inside a `with` block.

    The listener is registered on entry and removed on exit, so nothing runs at import time
    and no state outlives the block.
    """

    def __init__(self):
        self.seconds = 0.0

    def _on_duration(self, event: str, seconds: float, **kwargs) -> None:
        if event in _COMPILE_EVENTS:
            self.seconds += seconds

    def __enter__(self) -> "CompileTimer":
        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        return self

    def __exit__(self, *exc) -> None:
        jax.monitoring.unregister_event_duration_listener(self._on_duration)
