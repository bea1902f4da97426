"""Files of the int8 proofs: integer networks (safetensors + JSON metadata) and proofs
(versioned JSON).

A network file holds every layer's integer tensors (``layer<i>.weight`` int8,
``.bias`` int64, ``.multiplier`` and an optional ``.post_shift`` int64) and, in the
safetensors header's metadata, one JSON record: format, version, input shape and range,
the scales and zero point relating the integers to the float model, and per layer its
kind and settings. Loading checks everything and builds
the :class:`~vtrust.proofs.int8.network.Int8Network` (which refuses what it cannot
express); any problem is a :class:`~vtrust.errors.ModelFileError`.

A proof file states the network's hash, the inputs (int8 values) and the Fiat–Shamir
messages (kind, values). Reading trusts nothing: framing, types and sizes are checked,
and the verifier compares the hash with its own network's and the inputs with its own
(when it has them); a bad proof is :class:`~vtrust.errors.ProofRejected`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from vtrust._io import atomic_write_bytes, atomic_write_text, parse_json
from vtrust.errors import CircuitError, InputError, ModelFileError, ProofRejected
from vtrust.proofs.channel import Send
from vtrust.proofs.files import read_document
from vtrust.proofs.int8.network import Add, Conv, Dense, Flatten, Int8Network, MaxPool, Requant
from vtrust.proofs.int8.ptq import QuantizedModel

NETWORK_FORMAT, NETWORK_VERSION = "vtrust-int8-network", 2
PROOF_FORMAT, PROOF_VERSION = "vtrust-int8-proof", 1
FIELD = "2^61-1"
MAX_PROOF_BYTES = 1 << 31


def save_network(path: str | os.PathLike[str], quantized: QuantizedModel) -> str:
    """Write the quantised network atomically; returns its hash."""
    network = quantized.network
    tensors: dict[str, np.ndarray] = {}
    layers: list[dict[str, Any]] = []
    for i, (layer, name) in enumerate(zip(network.layers, network.names, strict=True)):
        record: dict[str, Any] = {"name": name}
        if isinstance(layer, Conv | Dense):
            record.update(kind="conv" if isinstance(layer, Conv) else "dense")
            tensors[f"layer{i}.weight"] = layer.weight
            tensors[f"layer{i}.bias"] = layer.bias
            if isinstance(layer, Conv):
                record.update(stride=layer.stride, padding=layer.padding)
        elif isinstance(layer, Requant):
            clamp = None if layer.clamp is None else [int(v) for v in layer.clamp]
            record.update(kind="requant", shift=layer.shift, relu=layer.relu, clamp=clamp,
                          rounding=layer.rounding)  # fmt: skip
            tensors[f"layer{i}.multiplier"] = np.asarray(layer.multiplier, dtype=np.int64)
            if layer.post_shift is not None:
                tensors[f"layer{i}.post_shift"] = np.asarray(layer.post_shift, dtype=np.int64)
        elif isinstance(layer, MaxPool):
            record.update(kind="maxpool", size=layer.size)
        elif isinstance(layer, Add):
            record.update(kind="add", source=layer.source, multipliers=list(layer.multipliers),
                          shift=layer.shift, relu=layer.relu)  # fmt: skip
        else:
            record.update(kind="flatten")
        layers.append(record)
    meta = {"format": NETWORK_FORMAT, "version": NETWORK_VERSION,
            "input_shape": list(network.input_shape), "input_range": list(network.input_range),
            "input_scale": quantized.input_scale, "input_zero_point": quantized.input_zero_point,
            "output_scale": np.asarray(quantized.output_scale, dtype=np.float64).tolist(),
            "layers": layers, "sha256": network.sha256()}  # fmt: skip
    raw = st_save(tensors, metadata={"vtrust-int8": json.dumps(meta, sort_keys=True)})
    atomic_write_bytes(path, raw)
    return network.sha256()


def load_network(path: str | os.PathLike[str]) -> QuantizedModel:
    """Read and check a network file (ModelFileError; InputError for a missing file)."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{source}: no such file") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({exc.strerror})") from None
    try:
        tensors = st_load(raw)
        header_len = int.from_bytes(raw[:8], "little")
        header = parse_json(raw[8 : 8 + header_len].decode("utf-8"))
        meta = parse_json(header["__metadata__"]["vtrust-int8"])
    except (SafetensorError, ValueError, KeyError, TypeError, UnicodeDecodeError, RecursionError):
        raise ModelFileError(f"{source}: not an int8 network file") from None
    if not isinstance(meta, dict) or meta.get("format") != NETWORK_FORMAT:
        raise ModelFileError(f"{source}: not an int8 network file")
    if meta.get("version") != NETWORK_VERSION:
        raise ModelFileError(f"{source}: int8 network version {meta.get('version')!r} is not "
                             f"{NETWORK_VERSION}")  # fmt: skip
    try:
        quantized = _rebuild(meta, tensors)
    except (CircuitError, KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{source}: malformed int8 network ({exc})") from None
    if quantized.network.sha256() != meta.get("sha256"):
        raise ModelFileError(f"{source}: the tensors do not match the recorded hash")
    return quantized


def _rebuild(meta: dict[str, Any], tensors: dict[str, np.ndarray]) -> QuantizedModel:
    def tensor(key: str, dtype) -> np.ndarray:
        value = tensors[key]
        if value.dtype != dtype:
            raise TypeError(f"{key} must be {np.dtype(dtype).name}, not {value.dtype}")
        return value

    layers, names = [], []
    for i, record in enumerate(meta["layers"]):
        kind = record["kind"]
        if kind in ("conv", "dense"):
            weight, bias = tensor(f"layer{i}.weight", np.int8), tensor(f"layer{i}.bias", np.int64)
            if kind == "conv":
                stride, padding = record["stride"], record["padding"]
                if type(stride) is not int or type(padding) is not int:
                    raise TypeError("stride and padding must be integers")
                layers.append(Conv(weight, bias, stride, padding))
            else:
                layers.append(Dense(weight, bias))
        elif kind == "requant":
            if type(record["shift"]) is not int or type(record["relu"]) is not bool:
                raise TypeError("a requantisation needs an integer shift and a boolean relu")
            clamp = record["clamp"]
            if clamp is not None and not isinstance(clamp, list):
                raise TypeError("a clamp is null or two integers")
            post_key = f"layer{i}.post_shift"
            post = tensor(post_key, np.int64) if post_key in tensors else None
            if not isinstance(record["rounding"], str):
                raise TypeError("a rounding is a string")
            layers.append(Requant(tensor(f"layer{i}.multiplier", np.int64), record["shift"],
                                  record["relu"], record["rounding"], post,
                                  None if clamp is None else tuple(clamp)))  # fmt: skip
        elif kind == "maxpool":
            if type(record["size"]) is not int:
                raise TypeError("a max-pool size must be an integer")
            layers.append(MaxPool(record["size"]))
        elif kind == "flatten":
            layers.append(Flatten())
        elif kind == "add":
            multipliers = record["multipliers"]
            if not isinstance(multipliers, list) or type(record["relu"]) is not bool:
                raise TypeError("an add needs a list of multipliers and a boolean relu")
            layers.append(
                Add(record["source"], tuple(multipliers), record["shift"], record["relu"])
            )
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
        names.append(str(record["name"]))
    shape = meta["input_shape"]
    if not (
        isinstance(shape, list) and len(shape) == 3 and all(type(d) is int and d > 0 for d in shape)
    ):
        raise ValueError("the input shape must be three positive integers")
    bounds, zero_point = meta["input_range"], meta["input_zero_point"]
    if not isinstance(bounds, list) or type(zero_point) is not int:
        raise TypeError("the input range is two integers and the zero point an integer")
    network = Int8Network(tuple(shape), tuple(layers), tuple(names), tuple(bounds))
    input_scale = float(meta["input_scale"])
    output_scale = np.asarray(meta["output_scale"], dtype=np.float64)
    if not (np.isfinite(input_scale) and input_scale > 0 and np.isfinite(output_scale).all()):
        raise ValueError("the scales must be finite and positive")
    return QuantizedModel(network, input_scale, output_scale, zero_point)


def proof_document(network: Int8Network, x: np.ndarray, messages: list[Send]) -> dict[str, Any]:
    """The JSON document of a Fiat–Shamir int8 proof for int8 inputs x."""
    return {"format": PROOF_FORMAT, "version": PROOF_VERSION, "field": FIELD,
            "mode": "fiat-shamir", "network_sha256": network.sha256(),
            "inputs": np.asarray(x, dtype=np.int64).tolist(),
            "messages": [{"kind": m.kind, "values": np.asarray(m.values).tolist()}
                         for m in messages]}  # fmt: skip


def write_proof(path: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    """Write atomically (a temp file renamed into place)."""
    return atomic_write_text(path, json.dumps(document, separators=(",", ":")))


def read_proof(path: str | os.PathLike[str], network: Int8Network) -> tuple[np.ndarray, list[Send]]:
    """The proof's inputs (int8 values, checked against the network's shape) and
    messages; ProofRejected for anything malformed, InputError for a missing file."""
    framing = {"format": PROOF_FORMAT, "version": PROOF_VERSION, "field": FIELD,
               "mode": "fiat-shamir"}  # fmt: skip
    document = read_document(path, framing, max_bytes=MAX_PROOF_BYTES)
    if document.get("network_sha256") != network.sha256():
        raise ProofRejected("the proof is for a different network")
    try:
        x = np.array(document.get("inputs"))
        if x.dtype.kind != "i":  # no floats, bools or strings cast silently
            raise TypeError("inputs must be integers")
        x = network.check_inputs(x)
    except (InputError, ValueError, TypeError, OverflowError):
        raise ProofRejected(
            "the inputs must be integers of the network's input shape and range"
        ) from None
    messages = document.get("messages")
    if not isinstance(messages, list):
        raise ProofRejected("messages must be a list")
    out = []
    for m in messages:
        if (
            not isinstance(m, dict)
            or set(m) != {"kind", "values"}
            or not isinstance(m["kind"], str)
        ):
            raise ProofRejected("a message is an object with a kind and values")
        out.append(Send(m["kind"], m["values"]))
    return x, out
