"""The enclave cost model: stated parameters turning measured work into modelled time.

Nothing here runs on SGX; the simulation measures the real computation on this CPU and
charges what an enclave would add. Defaults, and where they come from:

* ``epc_bytes`` = 128 MiB — SGX1's enclave page cache (about 93 MiB of it usable);
  a working set above it pages.
* ``page_seconds`` = 12 µs per 4 KiB page moved in or out of the EPC (≈ 40,000 cycles
  for an EWB/ELDU pair, Orenbach et al., Eleos, EuroSys 2017), charged for the bytes
  above the budget on every pass over them.
* ``crossing_seconds`` = 3 µs per enclave call (≈ 8,600 cycles for an ECALL, Weisse et
  al., HotCalls, ISCA 2017).
* ``copy_seconds_per_byte`` = 0.5 ns: copying arguments across the boundary (≈ 2 GB/s
  including memory encryption).
* ``inside_slowdown`` = 1.0: compute inside the EPC runs at native speed on one core
  (the simulation measures inside work single-threaded, like Slalom's enclave).
* ``host_speedup`` = 1.0: the untrusted host's linear algebra relative to this CPU;
  Slalom's 6–20× over all-inside comes from an untrusted GPU — set e.g. 30 to model one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from vtrust.errors import InputError

PAGE = 4096


@dataclass(frozen=True)
class CostModel:
    epc_bytes: int = 128 * 2**20
    page_seconds: float = 12e-6
    crossing_seconds: float = 3e-6
    copy_seconds_per_byte: float = 0.5e-9
    inside_slowdown: float = 1.0
    host_speedup: float = 1.0

    def __post_init__(self) -> None:
        if self.epc_bytes <= 0 or min(self.page_seconds, self.crossing_seconds) < 0:
            raise InputError("enclave cost model: sizes must be positive, costs ≥ 0")
        if self.copy_seconds_per_byte < 0 or self.inside_slowdown <= 0 or self.host_speedup <= 0:
            raise InputError("enclave cost model: slowdown and speedup must be positive")

    def to_json(self) -> dict[str, float]:
        return asdict(self)

    def paging(self, working_set: int) -> float:
        """Seconds of paging for one pass over ``working_set`` bytes."""
        excess = max(0, working_set - self.epc_bytes)
        return -(-excess // PAGE) * self.page_seconds


@dataclass
class Ledger:
    """Modelled seconds by where they were spent, and what crossed the boundary."""

    model: CostModel = field(default_factory=CostModel)
    inside: float = 0.0
    host: float = 0.0
    boundary: float = 0.0
    paging: float = 0.0
    calls: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def charge_inside(self, measured: float, working_set: int) -> None:
        self.inside += measured * self.model.inside_slowdown
        self.paging += self.model.paging(working_set)

    def charge_host(self, measured: float) -> None:
        self.host += measured / self.model.host_speedup

    def charge_call(self, bytes_in: int, bytes_out: int) -> None:
        self.calls += 1
        self.bytes_in += bytes_in
        self.bytes_out += bytes_out
        self.boundary += (
            self.model.crossing_seconds + (bytes_in + bytes_out) * self.model.copy_seconds_per_byte
        )

    @property
    def total(self) -> float:
        return self.inside + self.host + self.boundary + self.paging

    def to_json(self) -> dict[str, float | int]:
        return {
            "inside_s": self.inside,
            "host_s": self.host,
            "boundary_s": self.boundary,
            "paging_s": self.paging,
            "total_s": self.total,
            "calls": self.calls,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
        }
