"""py_ecc's BLS12-381 signatures, imported without its side effect: importing py_ecc
raises the interpreter's recursion limit to 100,000 for the whole process, which lets
deeply nested hostile input overflow the C stack elsewhere; the limit is restored (BLS
signing, verification and aggregation do not need it)."""

import sys

_limit = sys.getrecursionlimit()
try:
    from py_ecc.bls import G2ProofOfPossession as bls
finally:
    sys.setrecursionlimit(_limit)

__all__ = ["bls"]
