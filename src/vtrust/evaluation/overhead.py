"""What vtrust's oracle adds to a model runtime's own batched inference.

:func:`oracle_overhead` times, alternately, the runtime alone — the target's own
onnxruntime session or LiteRT interpreter, fed input already in its own form
(pre-quantised for an integer model) — and an undefended oracle over that same runtime
object answering canonical images (input checks, the input spec, quantisation,
probabilities, client accounting).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from vtrust.errors import InputError
from vtrust.oracle import Oracle
from vtrust.targets.base import Target
from vtrust.timing import interleaved


def runtime_alone(target: Target, x: np.ndarray) -> Callable[[], Any]:
    """A call of the target's runtime on ``x`` (canonical images) converted beforehand."""
    runner = target.run
    model_input = target.spec.to_model(x)
    if hasattr(runner, "session"):  # onnxruntime
        feed = {runner.input_name: model_input.astype(runner.dtype)}
        return lambda: runner.session.run([runner.output_name], feed)
    if hasattr(runner, "interpreter"):  # LiteRT
        runner(model_input)  # resize the interpreter to this batch
        interpreter, index, quantised = (
            runner.interpreter,
            runner.input["index"],
            runner.quantise(model_input),
        )

        def invoke() -> Any:
            interpreter.set_tensor(index, quantised)
            interpreter.invoke()
            return interpreter.get_tensor(runner.output["index"])

        return invoke
    raise InputError(f"a {target.format} target has no separate runtime to compare with")


def oracle_overhead(target: Target, x: np.ndarray, rounds: int = 40) -> dict[str, float]:
    """Median milliseconds of the runtime alone and of the oracle on batch ``x``, and the
    median per-round ratio (oracle / runtime)."""
    oracle = Oracle(target)
    timed = interleaved(runtime_alone(target, x), lambda: oracle.query(x), rounds)
    return {"runtime_ms": timed["a_s"] * 1e3, "oracle_ms": timed["b_s"] * 1e3,
            "ratio": timed["ratio"], "batch": len(x)}  # fmt: skip
