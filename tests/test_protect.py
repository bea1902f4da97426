"""Protection keys, weight scrambling and sealed files."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from vtrust import keystream
from vtrust.errors import KeyFileError, ScrambleError, SealError
from vtrust.keying import ProtectionKey, load_protection_key, save_protection_key
from vtrust.models import accuracy, build_model, load_model, save_model
from vtrust.models.files import model_sha256
from vtrust.protect import seal
from vtrust.protect.scramble import (
    TensorPermutation,
    scramble,
    scramble_metadata,
    unscramble,
    unscramble_checked,
)

KEY = ProtectionKey.generate(seed=1)


# -- keys ------------------------------------------------------------------------------
def test_keys_are_random_unless_seeded_and_hide_their_secret():
    assert ProtectionKey.generate().secret != ProtectionKey.generate().secret
    assert ProtectionKey.generate(seed=5).secret == ProtectionKey.generate(seed=5).secret
    assert KEY.secret.hex() not in repr(KEY)
    with pytest.raises(KeyFileError):
        ProtectionKey(b"short")


def test_device_keys_differ_per_device_and_from_the_master():
    a, b = KEY.for_device("cam-1"), KEY.for_device("cam-2")
    assert len({a.secret, b.secret, KEY.secret}) == 3 and a.device == "cam-1"
    assert KEY.for_device("cam-1").secret == a.secret


def test_key_files_round_trip_and_refuse_tampering(tmp_path):
    path = save_protection_key(tmp_path / "k.json", KEY)
    assert load_protection_key(path).secret == KEY.secret
    doc = path.read_text().replace(
        KEY.secret.hex()[:4], "0000" if KEY.secret.hex()[:4] != "0000" else "1111"
    )
    (tmp_path / "bad.json").write_text(doc)
    with pytest.raises(KeyFileError, match="fingerprint"):
        load_protection_key(tmp_path / "bad.json")
    for text in ("", "[]", '{"format": "vtrust-protection-key", "version": 9}', "\\xff"):
        (tmp_path / "x.json").write_text(text)
        with pytest.raises(KeyFileError):
            load_protection_key(tmp_path / "x.json")
    with pytest.raises(KeyFileError):
        load_protection_key(tmp_path / "missing.json")


SALT = bytes(range(16))


# -- keyed permutations and scrambling -----------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3000), label=st.text(max_size=8))
def test_keyed_permutations_are_permutations_and_keyed(n, label):
    perm = keystream.derived(KEY.secret, label).permutation(n)
    assert sorted(perm.tolist()) == list(range(n))
    assert np.array_equal(perm, keystream.derived(KEY.secret, label).permutation(n))
    if n >= 20:
        other = keystream.derived(KEY.for_device("x").secret, label).permutation(n)
        salted = keystream.derived(KEY.secret, label, salt=SALT).permutation(n)
        assert not np.array_equal(perm, other) and not np.array_equal(perm, salted)


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=4).map(tuple),
    seed=st.integers(0, 1000),
)
def test_unscrambling_inverts_scrambling_bit_for_bit(shape, seed):
    """extract∘embed = identity for the permutation of any tensor shape."""
    values = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    perm = TensorPermutation.derive(KEY, f"t{seed}", shape, SALT)
    moved = perm.apply(values)
    assert sorted(moved.ravel().tolist()) == sorted(values.ravel().tolist())
    assert perm.invert(moved).tobytes() == values.tobytes()


def test_scrambled_model_is_near_chance_and_unscrambles_exactly(digits, mlp_victim):
    """Averaged over keys, a scrambled copy of the trained digits MLP (0.97) is at chance
    (10 classes) + 2 points; single keys vary (the experiment reports the spread)."""
    scrambled = [scramble(mlp_victim, ProtectionKey.generate(seed=s), SALT) for s in range(10)]
    accuracies = [accuracy(m, digits.test) for m in scrambled]
    assert accuracy(mlp_victim, digits.test) > 0.95
    assert np.mean(accuracies) <= 0.12 and max(accuracies) <= 0.2
    key = ProtectionKey.generate(seed=0)
    assert model_sha256(unscramble(scrambled[0], key, SALT)) == model_sha256(mlp_victim)
    wrong = unscramble(scrambled[0], key.for_device("other"), SALT)
    assert model_sha256(wrong) != model_sha256(mlp_victim)


def test_per_device_copies_differ(small_cnn):
    a = scramble(small_cnn, KEY.for_device("a"), SALT)
    b = scramble(small_cnn, KEY.for_device("b"), SALT)
    assert model_sha256(a) != model_sha256(b)


def test_checked_unscrambling_refuses_wrong_keys_and_altered_files(small_cnn):
    record = scramble_metadata(small_cnn, KEY, SALT)
    scrambled = scramble(small_cnn, KEY, SALT)
    assert model_sha256(unscramble_checked(scrambled, record, KEY)) == record["original_sha256"]
    with pytest.raises(ScrambleError, match="wrong key"):
        unscramble_checked(scrambled, record, ProtectionKey.generate(seed=2))
    with pytest.raises(ScrambleError, match="not a scrambled model"):
        unscramble_checked(scrambled, None, KEY)
    with torch.no_grad():
        next(scrambled.parameters()).view(-1)[0] += 1.0
    with pytest.raises(ScrambleError, match="differ"):
        unscramble_checked(scrambled, record, KEY)


# -- sealed files ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sealed_model(tmp_path_factory, small_mlp):
    d = tmp_path_factory.mktemp("seal")
    model_file = d / "m.vtm"
    save_model(model_file, small_mlp)
    blob = seal.seal_bytes(model_file.read_bytes(), KEY, {"name": "m"})
    return d, model_file, blob


def test_sealed_models_load_with_the_key(sealed_model, small_mlp):
    d, model_file, blob = sealed_model
    (d / "m.sealed").write_bytes(blob)
    loaded = seal.load_sealed_model(d / "m.sealed", KEY)
    assert model_sha256(loaded.model) == model_sha256(small_mlp)
    assert seal.open_bytes(blob, KEY).metadata == {"name": "m"}
    assert seal.seal_bytes(b"x", KEY) != seal.seal_bytes(b"x", KEY)  # fresh salt and nonce


def test_every_single_bit_flip_and_a_wrong_key_are_rejected(sealed_model):
    _, _, blob = sealed_model
    rng = np.random.default_rng(0)
    bits = len(blob) * 8
    positions = set(rng.choice(bits, size=1000, replace=False).tolist())
    positions |= set(range(0, 8 * 160))  # the whole magic, length and header start
    for position in positions:
        flipped = bytearray(blob)
        flipped[position // 8] ^= 1 << (position % 8)
        with pytest.raises(SealError, match="tampered"):
            seal.open_bytes(bytes(flipped), KEY)
    with pytest.raises(SealError, match="wrong key"):
        seal.open_bytes(blob, ProtectionKey.generate(seed=9))
    for cut in (0, 5, 12, len(blob) // 2, len(blob) - 1):
        with pytest.raises(SealError):
            seal.open_bytes(blob[:cut], KEY)


def test_a_failed_unseal_leaves_no_output(sealed_model, tmp_path):
    _, _, blob = sealed_model
    bad = bytearray(blob)
    bad[-1] ^= 1
    (tmp_path / "bad.sealed").write_bytes(bytes(bad))
    with pytest.raises(SealError):
        seal.unseal_file(tmp_path / "bad.sealed", tmp_path / "out.vtm", KEY)
    assert list(tmp_path.iterdir()) == [tmp_path / "bad.sealed"]


def test_model_files_survive_seal_and_unseal(sealed_model, tmp_path):
    _, model_file, _ = sealed_model
    seal.seal_file(model_file, tmp_path / "s", KEY)
    seal.unseal_file(tmp_path / "s", tmp_path / "back.vtm", KEY)
    assert (tmp_path / "back.vtm").read_bytes() == model_file.read_bytes()
    assert load_model(tmp_path / "back.vtm").sha256


def test_scrambling_covers_every_parameter_tensor():
    model = build_model("cnn", (1, 8, 8), 10, seed=0)
    scrambled = scramble(model, KEY, SALT)
    for (name, a), (_, b) in zip(
        model.state_dict().items(), scrambled.state_dict().items(), strict=True
    ):
        assert not torch.equal(a, b), name


def test_hostile_nesting_is_a_parse_error_even_after_py_ecc_is_imported(tmp_path):
    """py_ecc raises the recursion limit on import; vtrust restores it and caps nesting
    while parsing untrusted JSON, so a file of brackets is an error, not a crash."""
    import json
    import sys

    from vtrust._io import parse_json
    from vtrust.enclave import attest  # noqa: F401  (imports py_ecc)

    assert sys.getrecursionlimit() < 10_000
    sys.setrecursionlimit(100_000)  # as if some other library had raised it
    try:
        with pytest.raises(json.JSONDecodeError):
            parse_json("[" * 200_000)
        (tmp_path / "k.json").write_text("[" * 200_000)
        with pytest.raises(KeyFileError):
            load_protection_key(tmp_path / "k.json")
        assert parse_json('{"a": [1]}') == {"a": [1]}
    finally:
        sys.setrecursionlimit(1000)
