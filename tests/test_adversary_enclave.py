"""Slalom, the enclave, attestation and scrambling against an adversary who has read the
code: it knows default seeds, stores (and replays) sealed pads, asks the enclave to run
its own code, and holds one plain/scrambled pair."""

import numpy as np
import pytest
import torch

from vtrust import keystream
from vtrust.enclave import modp
from vtrust.enclave.runtime import Enclave
from vtrust.enclave.slalom import Host, SlalomNetwork
from vtrust.errors import EnclaveError, TamperDetected
from vtrust.models import accuracy, build_model
from vtrust.models.recipes import train_model
from vtrust.protect.scramble import new_salt, scramble


class RecordingHost(Host):
    """An honest-but-curious host that keeps every blinded input it sees."""

    def __init__(self, ops):
        super().__init__(ops)
        self.seen = []

    def linear(self, index, blinded):
        self.seen.append((index, np.array(blinded)))
        return super().linear(index, blinded)


def unblind_with_known_seed(net, x, seed):
    """The attack on a seeded run: replay the enclave's stream from the seed, take the first
    pad it drew, and subtract it from what the host saw."""
    host = RecordingHost(net.ops)
    net.precompute(1, len(x))
    net.forward(x, host)
    guess = modp.random(keystream.from_seed(seed), (len(x), *net.ops[0].in_shape))
    recovered = modp.signed(modp.reduce(host.seen[0][1].astype(np.int64) - guess))
    return np.array_equal(recovered, net.ops[0].quantise_input(x))


@pytest.fixture(scope="module")
def slalom_model(digits):
    return train_model(digits, "mlp", seed=0).model.eval(), torch.from_numpy(digits.victim.x[:256])


def test_finding4_a_known_seed_unblinds_inputs_and_the_default_has_none(slalom_model, digits):
    model, calibration = slalom_model
    x = torch.from_numpy(digits.test.x[:8])
    seeded = SlalomNetwork(model, calibration, seed=0)
    assert seeded.insecure and unblind_with_known_seed(seeded, x, 0)  # why seeds are insecure
    default = SlalomNetwork(model, calibration)
    assert not default.insecure and not unblind_with_known_seed(default, x, 0)


def test_finding5_a_replayed_pad_is_refused(slalom_model, digits):
    model, calibration = slalom_model
    net = SlalomNetwork(model, calibration)
    x = torch.from_numpy(digits.test.x[:8])
    net.precompute(3, len(x))
    used = net._sealed_pads[0][0]  # the host stores the sealed pads: it can keep a copy
    net.forward(x)
    net._sealed_pads[0].insert(0, used)
    with pytest.raises(TamperDetected, match="replay"):
        net.forward(x)
    net._sealed_pads[0].insert(0, net._sealed_pads[1][0])  # another layer's pad
    with pytest.raises(TamperDetected, match="not one for layer 0"):
        net.forward(x)


def test_freivalds_vectors_are_fresh_for_every_batch(slalom_model, digits):
    model, calibration = slalom_model
    net = SlalomNetwork(model, calibration)
    x = torch.from_numpy(digits.test.x[:4])
    net.precompute(2, len(x))
    vectors = []
    for _ in range(2):
        net.forward(x)
        vectors.append(net.enclave._Enclave__inside.state["checks"][0].secrets_s.copy())
    assert not np.array_equal(*vectors)


def run_part(inside, x):
    return inside.part(x)


def other_code(inside, x):
    return inside.part(x) * 0


def test_finding8_the_measurement_covers_the_code_and_the_architecture():
    torch.manual_seed(0)
    linear = torch.nn.Linear(4, 2)
    a = Enclave(linear, role="r", entry_points=(run_part,))
    b = Enclave(linear, role="r", entry_points=(other_code,))
    assert a.measurement != b.measurement  # other code, other measurement
    with pytest.raises(EnclaveError, match="not a measured entry point"):
        a.ecall(other_code, torch.zeros(1, 4))
    with pytest.raises(EnclaveError):
        a.ecall(lambda inside, t: inside.part(t), torch.zeros(1, 4))
    wrapped = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(4, 2))
    wrapped[1].load_state_dict(linear.state_dict())
    plain = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.Linear(4, 2))
    plain[1].load_state_dict(linear.state_dict())  # same weights, same keys, other layers
    assert (
        Enclave(wrapped, role="r", entry_points=(run_part,)).measurement
        != Enclave(plain, role="r", entry_points=(run_part,)).measurement
    )


def recover_permutation(plain: torch.Tensor, scrambled: torch.Tensor) -> np.ndarray:
    """Known plaintext: where each scrambled position's value sits in the plain tensor. A
    value the plain tensor holds more than once (a float32 coincidence: 2 pairs among
    the digits MLP's 17k weights) cannot be placed; its positions are matched in order,
    so the result is still a permutation."""
    where: dict[float, list[int]] = {}
    for i, v in enumerate(plain.numpy().ravel().tolist()):
        where.setdefault(v, []).append(i)
    return np.array([where[v].pop(0) for v in scrambled.numpy().ravel().tolist()])


def ambiguous_positions(plain: torch.Tensor) -> np.ndarray:
    """Positions whose value occurs more than once in ``plain`` (known plaintext cannot
    tell them apart)."""
    flat = plain.numpy().ravel()
    values, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    return counts[inverse] > 1


def apply_recovered(model_scrambled, permutations):
    out = build_model("mlp", (1, 8, 8), 10)
    state = {}
    for name, tensor in model_scrambled.state_dict().items():
        flat = tensor.numpy().ravel()
        restored = np.empty_like(flat)
        restored[permutations[name]] = flat
        state[name] = torch.from_numpy(restored.reshape(tensor.shape))
    out.load_state_dict(state)
    return out.eval()


def test_finding6_one_known_pair_does_not_unscramble_other_files(digits):
    """The attacker holds model A in the clear and A scrambled; model B is scrambled under
    the same key. With a shared salt (the old, deterministic scheme) the recovered
    permutations unscramble B exactly; with per-file salts B stays scrambled."""
    from vtrust.keying import ProtectionKey

    a = train_model(digits, "mlp", seed=0).model
    b = train_model(digits, "mlp", seed=1).model
    key = ProtectionKey.generate()
    salt_a, salt_b = new_salt(), new_salt()
    scrambled_a = scramble(a, key, salt_a)
    recovered = {
        name: recover_permutation(a.state_dict()[name], t)
        for name, t in scrambled_a.state_dict().items()
    }
    same_salt = apply_recovered(scramble(b, key, salt_a), recovered)
    for name, tensor in b.state_dict().items():  # B recovered wherever A's values are unique
        clear = ~ambiguous_positions(a.state_dict()[name])
        restored = same_salt.state_dict()[name].numpy().ravel()
        np.testing.assert_array_equal(restored[clear], tensor.numpy().ravel()[clear])
    assert accuracy(same_salt, digits.test) >= accuracy(b, digits.test) - 0.01
    other_salt = apply_recovered(scramble(b, key, salt_b), recovered)
    assert accuracy(other_salt, digits.test) < 0.3 < accuracy(b, digits.test)


def test_sealed_files_resist_splicing_and_a_renamed_header():
    """New attempt on sealing: graft file B's ciphertext onto file A's header (same key),
    or rewrite the clear metadata; both fail authentication."""
    from vtrust.errors import SealError
    from vtrust.keying import ProtectionKey
    from vtrust.protect.seal import MAGIC, open_bytes, seal_bytes

    def body_start(blob):  # magic, a 4-byte big-endian header length, the JSON header
        return len(MAGIC) + 4 + int.from_bytes(blob[len(MAGIC) : len(MAGIC) + 4], "big")

    key = ProtectionKey.generate()
    a = seal_bytes(b"model A" * 100, key, {"name": "a"})
    b = seal_bytes(b"model B" * 100, key, {"name": "b"})
    with pytest.raises(SealError):
        open_bytes(a[: body_start(a)] + b[body_start(b) :], key)
    with pytest.raises(SealError):
        open_bytes(a.replace(b'"name": "a"', b'"name": "b"'), key)
    assert open_bytes(a, key).data == b"model A" * 100


def test_non_ascii_digests_in_files_are_rejections_not_crashes(tmp_path, small_mlp):
    """hmac.compare_digest raises TypeError on non-ASCII str: every digest read from a
    file (model checksums, key fingerprints, quote measurements) is validated first."""
    import json

    from vtrust.enclave.attest import DeviceIdentity, QuoteVerifier
    from vtrust.errors import AttestationError, KeyFileError, ModelFileError
    from vtrust.keying import ProtectionKey, load_protection_key, save_protection_key
    from vtrust.models import load_model, save_model

    save_model(tmp_path / "m.st", small_mlp)
    raw = (tmp_path / "m.st").read_bytes()
    stored = json.loads(raw[8 : 8 + int.from_bytes(raw[:8], "little")])["__metadata__"]
    digest = stored["vtrust_sha256"].encode()
    forged = raw.replace(digest, "é".encode() * 16 + digest[32:])  # same byte length
    (tmp_path / "bad.st").write_bytes(forged)
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(tmp_path / "bad.st")

    save_protection_key(tmp_path / "k.json", ProtectionKey.generate())
    doc = json.loads((tmp_path / "k.json").read_text())
    doc["fingerprint"] = "é" * 16
    (tmp_path / "k.json").write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="fingerprint"):
        load_protection_key(tmp_path / "k.json")

    device = DeviceIdentity.generate("cam")
    verifier = QuoteVerifier([device.public], "ab" * 32)
    quote = device.quote("é" * 64, verifier.challenge())  # validly signed, hostile content
    with pytest.raises(AttestationError, match="wrong measurement"):
        verifier.verify(quote)
