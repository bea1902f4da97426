"""Slalom (Tramèr & Boneh 2019): linear layers outsourced to the untrusted host, their
results checked with Freivalds' algorithm and their inputs blinded; everything else
(activations, pooling, rescaling, the secrets) inside the enclave.

The network is first quantised to fixed point over F_p, p = 2^24 − 3: activations to
8 bits per layer (scale from calibration data, saturating), weights to ≤ 8 bits with
the largest scale at which no accumulator can leave (−p/2, p/2) — a static bound per
output, as in :mod:`vtrust.proofs.quantize`; a layer that cannot meet it is refused.

Per linear layer and example, an offline phase inside the enclave draws a one-time pad
R (uniform in F_p, the input's shape) and its unblinding factor U = lin(R); pads are
sealed and stored outside with their layer and a serial number, and the enclave keeps
the serials it has used: a pad handed back a second time (or for another layer) is
refused, since two inputs blinded by one pad give the host their difference. Online:
the enclave sends x + R, the host returns y' = lin(x + R); the enclave checks y' with
Freivalds (error ≤ p^−r, fresh secret vectors for every batch, so a host learns nothing
usable from which wrong answers were caught) and unblinds y = y' − U. The host sees only
uniformly random inputs. Slalom protects the inputs and the integrity of the result, not
the weights: the host must hold them.

Every secret (pads, Freivalds vectors) comes from a ChaCha20 stream keyed from
:mod:`secrets` inside the enclave. An explicit ``seed`` makes them reproducible for
tests and experiments — and known to anyone who knows the seed: such a network reports
itself ``insecure``.

:meth:`SlalomNetwork.forward_plain` runs the same quantised arithmetic without enclave
or host; Slalom's predictions equal it exactly.
"""

from __future__ import annotations

import functools
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as nnf
from torch import nn

from vtrust import keystream
from vtrust.enclave import modp
from vtrust.enclave.costs import CostModel
from vtrust.enclave.freivalds import FreivaldsCheck
from vtrust.enclave.runtime import Enclave, Inside
from vtrust.enclave.split import units
from vtrust.errors import InputError, TamperDetected

ACT_BITS = 8
MAX_WEIGHT_BITS = 8


@dataclass
class QuantOp:
    """One linear layer in fixed point, with the weight-free layers after it."""

    name: str
    weight: np.ndarray  # (m, k) small signed integers; conv: (out, in·kh·kw)
    bias: np.ndarray  # (m,) integers at scale 2^(in_shift + w_shift)
    in_shift: int  # input x_q = clip(round(x · 2^in_shift))
    w_shift: int
    signed_input: bool
    before: nn.Sequential  # weight-free layers on the float input (a leading flatten)
    after: nn.Sequential
    conv: tuple[int, int, int] | None  # (kernel, stride, padding) for convolutions
    in_shape: tuple[int, ...]  # one example's input shape

    def lin(self, x: np.ndarray) -> np.ndarray:
        """The layer's linear map mod p on a batch of input elements (no bias)."""
        return self.finish_shape(modp.matmul(self.columns(x), self.prepared), len(x))

    @functools.cached_property
    def prepared(self) -> modp.Weights:
        return modp.Weights(self.weight)

    def columns(self, x: np.ndarray) -> np.ndarray:
        """The batch as the rows the weight multiplies (im2col for convolutions)."""
        if self.conv is None:
            return np.asarray(x).reshape(len(x), -1)
        kernel, stride, padding = self.conv
        cols = nnf.unfold(
            torch.from_numpy(np.asarray(x, dtype=np.float64)), kernel, padding=padding,
            stride=stride,
        )  # fmt: skip
        rows = cols.transpose(1, 2).reshape(-1, cols.shape[1]).numpy()
        return rows.astype(np.int32 if np.asarray(x).dtype == np.int32 else np.int64)

    def finish_shape(self, y: np.ndarray, n: int) -> np.ndarray:
        if self.conv is None:
            return y
        kernel, stride, padding = self.conv
        side = (self.in_shape[1] + 2 * padding - kernel) // stride + 1
        return y.reshape(n, side, side, -1).transpose(0, 3, 1, 2)

    def quantise_input(self, x: torch.Tensor) -> np.ndarray:
        lo, hi = (-(2 ** (ACT_BITS - 1) - 1), 2 ** (ACT_BITS - 1) - 1) if self.signed_input else (
            0, 2**ACT_BITS - 1)  # fmt: skip
        with torch.no_grad():
            x = self.before(x)
        scaled = torch.round(x.double() * 2.0**self.in_shift).clamp(lo, hi)
        return scaled.numpy().astype(np.int64)

    def output(self, acc: np.ndarray) -> torch.Tensor:
        """Accumulators (signed, with bias) back to float, then the weight-free layers."""
        scale = 2.0 ** (self.in_shift + self.w_shift)
        bias = self.bias.reshape((1, -1) + (1,) * (acc.ndim - 2))
        values = torch.from_numpy((acc + bias).astype(np.float64) / scale).float()
        with torch.no_grad():
            return self.after(values)


def _split_unit(unit):
    """(layers before the weighted one, the weighted layer, layers after it)."""
    at = next(i for i, (_, m) in enumerate(unit) if any(True for _ in m.parameters(False)))
    return unit[:at], unit[at], unit[at + 1 :]


def _calibrate(model: nn.Module, data: torch.Tensor) -> list[torch.Tensor]:
    """Each weighted layer's input on the calibration data."""
    inputs = []
    x = data.float()
    with torch.no_grad():
        for unit in units(model):
            before, (_, layer), after = _split_unit(unit)
            for _, module in before:
                x = module(x)
            inputs.append(x)
            for _, module in [("", layer), *after]:
                x = module(x)
    return inputs


def _shift_for(max_abs: float, bits: int) -> int:
    """The largest power-of-two exponent mapping ``max_abs`` into ``bits`` magnitude bits."""
    if max_abs <= 0:
        return 0
    return math.floor(math.log2((2**bits - 1) / max_abs))


def quantise(model: nn.Module, calibration: torch.Tensor) -> list[QuantOp]:
    """Fixed-point ops for a zoo model made of Linear/Conv2d layers followed by ReLU,
    max-pooling and flatten layers; :class:`InputError` for other layers or when no
    weight scale keeps every accumulator inside (−p/2, p/2)."""
    ops = []
    allowed = (nn.ReLU, nn.MaxPool2d, nn.Flatten)
    for unit, x in zip(units(model), _calibrate(model, calibration), strict=True):
        before, (name, layer), rest = _split_unit(unit)
        if not isinstance(layer, nn.Linear | nn.Conv2d):
            raise InputError(f"slalom: layer {name!r} ({type(layer).__name__}) is not linear")
        for other, module in [*before, *rest]:
            if not isinstance(module, allowed):
                raise InputError(f"slalom: layer {other!r} ({type(module).__name__}) unsupported")
        signed_input = bool(x.min() < 0)
        act_bits = ACT_BITS - 1 if signed_input else ACT_BITS
        in_shift = _shift_for(float(x.abs().max()), act_bits)
        w = layer.weight.detach().double().numpy()
        w = w.reshape(w.shape[0], -1)
        b = layer.bias.detach().double().numpy() if layer.bias is not None else np.zeros(len(w))
        conv = None
        if isinstance(layer, nn.Conv2d):
            if (
                layer.groups != 1
                or layer.dilation != (1, 1)
                or layer.kernel_size[0] != layer.kernel_size[1]
            ):
                raise InputError(f"slalom: convolution {name!r} must be square, ungrouped")
            conv = (layer.kernel_size[0], layer.stride[0], int(layer.padding[0]))
        act_max = 2**act_bits - 1
        for w_shift in range(_shift_for(float(np.abs(w).max()), MAX_WEIGHT_BITS - 1), -64, -1):
            w_q = np.round(w * 2.0**w_shift).astype(np.int64)
            b_q = np.round(b * 2.0 ** (in_shift + w_shift)).astype(np.int64)
            if int((np.abs(w_q).sum(axis=1) * act_max + np.abs(b_q)).max()) < modp.P // 2:
                break
        else:  # pragma: no cover - only for absurd weights
            raise InputError(f"slalom: no weight scale keeps layer {name!r} inside the field")
        if int(np.abs(w_q).max()) < 4:
            raise InputError(f"slalom: layer {name!r} would keep fewer than 3 weight bits")
        ops.append(
            QuantOp(name, w_q, b_q, in_shift, w_shift, signed_input,
                    nn.Sequential(*[m for _, m in before]).eval(),
                    nn.Sequential(*[m for _, m in rest]).eval(), conv, tuple(x.shape[1:]))
        )  # fmt: skip
    return ops


class _Part(nn.Module):
    """The quantised weights as buffers, so the enclave's measurement covers them."""

    def __init__(self, ops: list[QuantOp]) -> None:
        super().__init__()
        for i, op in enumerate(ops):
            self.register_buffer(f"w{i}", torch.from_numpy(op.weight.copy()))
            self.register_buffer(f"b{i}", torch.from_numpy(op.bias.copy()))


class Host:
    """The untrusted host: computes the outsourced linear maps (it holds the weights)."""

    def __init__(self, ops: list[QuantOp]) -> None:
        self.ops = ops

    def linear(self, index: int, blinded: np.ndarray) -> np.ndarray:
        return self.ops[index].lin(blinded)


class TamperingHost(Host):
    """A host that changes one element of one layer's result (for detection tests)."""

    def __init__(self, ops: list[QuantOp], layer: int, position: int, delta: int = 1) -> None:
        super().__init__(ops)
        self.layer, self.position, self.delta = layer, position, delta

    def linear(self, index: int, blinded: np.ndarray) -> np.ndarray:
        y = super().linear(index, blinded)
        if index == self.layer:
            flat = y.reshape(-1).copy()
            flat[self.position % flat.size] = (
                flat[self.position % flat.size] + self.delta
            ) % modp.P
            y = flat.reshape(y.shape)
        return y


_PAD_HEADER = 12  # layer (uint32) and serial (uint64), little-endian, sealed with the pad


def _pad_bytes(layer: int, serial: int, r: np.ndarray, u: np.ndarray) -> bytes:
    header = layer.to_bytes(4, "little") + serial.to_bytes(8, "little")
    return header + r.astype("<i4").tobytes() + u.astype("<i4").tobytes()


def _setup(inside: Inside, ops: list[QuantOp], seed: int | None, repetitions: int) -> None:
    """The enclave's secret stream (from :mod:`secrets` unless ``seed``) and pad ledger."""
    inside.state.update(
        ops=ops, stream=keystream.for_run(seed), repetitions=repetitions, issued=0, used=set()
    )


def _make_pads(inside: Inside, count: int, size: int) -> list[list[bytes]]:
    state, out = inside.state, []
    for layer, op in enumerate(state["ops"]):
        blobs = []
        for _ in range(count):
            r = modp.random(state["stream"], (size, *op.in_shape))
            serial, state["issued"] = state["issued"], state["issued"] + 1
            blobs.append(inside.seal(_pad_bytes(layer, serial, r, op.lin(r))))
        out.append(blobs)
    return out


def _refresh(inside: Inside) -> None:
    """New secret Freivalds vectors for the coming batch."""
    state = inside.state
    state["checks"] = [
        FreivaldsCheck.prepare(op.weight, state["stream"], state["repetitions"])
        for op in state["ops"]
    ]


def _blind(inside: Inside, index: int, n: int, values: torch.Tensor | None, blob: bytes):
    op = inside.state["ops"][index]
    raw = inside.unseal(blob)
    layer = int.from_bytes(raw[:4], "little")
    serial = int.from_bytes(raw[4:_PAD_HEADER], "little")
    if layer != index or serial >= inside.state["issued"]:
        raise TamperDetected(f"slalom: the pad handed in is not one for layer {index}")
    if serial in inside.state["used"]:
        raise TamperDetected("slalom: a used pad was handed in again (replay)")
    inside.state["used"].add(serial)
    raw = raw[_PAD_HEADER:]
    cut = 4 * n * math.prod(op.in_shape)
    if len(raw) <= cut:
        raise InputError(f"slalom: pads were not made for batches of {n}")
    r = np.frombuffer(raw[:cut], "<i4").astype(np.int64).reshape(n, *op.in_shape)
    u = np.frombuffer(raw[cut:], "<i4").astype(np.int64)
    if values is not None:  # the first layer's input arrives from the client
        inside.state["x"] = op.quantise_input(values)
    if r.shape != inside.state["x"].shape or u.size != n * len(op.weight) * (
        1 if op.conv is None else r[0, 0].size // op.conv[1] ** 2
    ):
        raise InputError(f"slalom: pads were not made for batches of {n}")
    inside.state["u"] = u
    blinded = modp.wrap(inside.state["x"] + r)  # x is small: x + r ∈ (−p, 2p)
    inside.state["blinded"] = blinded
    return blinded


def _unblind(inside: Inside, index: int, n: int, y: np.ndarray):
    op, blinded = inside.state["ops"][index], inside.state.pop("blinded")
    y = np.asarray(y)
    if y.dtype != np.int32:
        y = y.astype(np.int64)
    cols = op.columns(blinded)
    expected = op.finish_shape(np.empty((len(cols), len(op.weight))), n).shape
    if y.shape != expected or not inside.state["checks"][index].check(
        cols, y.transpose(0, 2, 3, 1).reshape(len(cols), -1) if op.conv else y
    ):
        raise TamperDetected(f"slalom: the host's result for layer {op.name!r} is wrong")
    u = inside.state.pop("u").reshape(y.shape)
    out = op.output(modp.centered_difference(y.astype(np.int64), u))
    if index + 1 < len(inside.state["ops"]):
        inside.state["x"] = inside.state["ops"][index + 1].quantise_input(out)
        return None
    return out


#: The functions that run inside a Slalom enclave (its measurement covers them).
ENTRY_POINTS = (_setup, _make_pads, _refresh, _blind, _unblind)


class SlalomNetwork:
    """A quantised network run the Slalom way between an enclave and a :class:`Host`."""

    def __init__(
        self,
        model: nn.Module,
        calibration: torch.Tensor,
        *,
        cost: CostModel | None = None,
        root_secret: bytes | None = None,
        seed: int | None = None,
        repetitions: int = 2,
    ) -> None:
        self.ops = quantise(model, calibration)
        self.enclave = Enclave(
            _Part(self.ops), role="slalom", cost=cost, root_secret=root_secret,
            entry_points=ENTRY_POINTS,
        )  # fmt: skip
        self.cost = cost or CostModel()
        self.host_seconds = 0.0
        self._sealed_pads: list[list[bytes]] = [[] for _ in self.ops]
        self.offline_seconds = 0.0
        self.insecure = seed is not None
        self._offline(_setup, self.ops, seed, repetitions)

    @property
    def error_bound(self) -> float:
        """Probability that one tampered layer result passes its check."""
        return float(modp.P) ** (-2)

    def _offline(self, fn, *args):
        before = self.enclave.ledger.total
        out = self.enclave.ecall(fn, *args)
        self.offline_seconds += self.enclave.ledger.total - before
        return out

    def precompute(self, batches: int, batch_size: int) -> None:
        """The offline phase: ``batches`` sealed pads of ``batch_size`` examples per layer."""
        for store, blobs in zip(self._sealed_pads, self._offline(_make_pads, batches, batch_size),
                                strict=True):  # fmt: skip
            store.extend(blobs)

    def pads_left(self) -> int:
        return min(len(store) for store in self._sealed_pads)

    def forward(self, x: torch.Tensor, host: Host | None = None) -> torch.Tensor:
        """Logits for a batch; :class:`TamperDetected` if the host's result is wrong."""
        host = host or Host(self.ops)
        if self.pads_left() == 0:
            raise InputError("slalom: no precomputed pads left; call precompute() first")
        n = len(x)
        values: torch.Tensor | None = x
        result = None
        self.enclave.ecall(_refresh)
        for index in range(len(self.ops)):
            blob = self._sealed_pads[index].pop(0)
            blinded = self.enclave.ecall(_blind, index, n, values, blob)
            values = None
            started = time.perf_counter()
            y = host.linear(index, blinded)
            self.host_seconds += time.perf_counter() - started
            result = self.enclave.ecall(_unblind, index, n, y)
        assert result is not None
        return result

    def forward_plain(self, x: torch.Tensor) -> torch.Tensor:
        """The same quantised arithmetic with no enclave, pads or host."""
        xq = self.ops[0].quantise_input(x)
        for i, op in enumerate(self.ops):
            out = op.output(modp.signed(op.lin(modp.reduce(xq))))
            if i + 1 < len(self.ops):
                xq = self.ops[i + 1].quantise_input(out)
        return out

    def modelled_seconds(self) -> float:
        """Online modelled time so far (the offline precompute excluded)."""
        return self.enclave.ledger.total - self.offline_seconds + (
            self.host_seconds / self.cost.host_speedup)  # fmt: skip
