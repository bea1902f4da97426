"""``vtrust keygen | scramble | unscramble | seal | unseal | enclave …`` end to end."""

import json

import pytest

from vtrust.cli import run
from vtrust.models import load_model
from vtrust.models.files import model_sha256


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("protect")
    assert run(["-q", "train", "--arch", "cnn", "--epochs", "4", "--out", str(d / "m.vtm")]) == 0
    assert run(["-q", "keygen", "--out", str(d / "k.json"), "--seed", "1"]) == 0
    assert run(["-q", "keygen", "--out", str(d / "other.json")]) == 0
    return d


def out_json(capsys):
    return json.loads(capsys.readouterr().out)


def test_scramble_and_unscramble_round_trip_per_device(files, capsys):
    d = files
    for device in ("cam-1", "cam-2"):
        out = str(d / f"s-{device}.vtm")
        assert run(["scramble", "--model", str(d / "m.vtm"), "--key", str(d / "k.json"),
                    "--device", device, "--out", out, "--json"]) == 0  # fmt: skip
        assert out_json(capsys)["device"] == device
    a, b = (load_model(d / f"s-cam-{i}.vtm") for i in (1, 2))
    assert a.sha256 != b.sha256 and a.metadata["scrambled"]["device"] == "cam-1"
    assert run(["-q", "unscramble", "--model", str(d / "s-cam-1.vtm"), "--key", str(d / "k.json"),
                "--device", "cam-1", "--out", str(d / "u.vtm")]) == 0  # fmt: skip
    assert model_sha256(load_model(d / "u.vtm").model) == model_sha256(
        load_model(d / "m.vtm").model
    )


def test_unscrambling_with_a_wrong_key_fails_cleanly(files, capsys):
    d = files
    code = run(["unscramble", "--model", str(d / "s-cam-1.vtm"), "--key", str(d / "k.json"),
                "--device", "cam-2", "--out", str(d / "x.vtm")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "wrong key" in err and err.count("\n") == 1
    assert not (d / "x.vtm").exists()
    code = run(["unscramble", "--model", str(d / "m.vtm"), "--key", str(d / "k.json"),
                "--out", str(d / "x.vtm")])  # fmt: skip
    assert code == 2 and "not a scrambled model" in capsys.readouterr().err


def test_seal_and_unseal_and_reject_wrong_keys_without_output(files, capsys):
    d = files
    assert run(["-q", "seal", "--in", str(d / "m.vtm"), "--key", str(d / "k.json"),
                "--out", str(d / "m.sealed")]) == 0  # fmt: skip
    assert run(["-q", "unseal", "--in", str(d / "m.sealed"), "--key", str(d / "k.json"),
                "--out", str(d / "back.vtm")]) == 0  # fmt: skip
    assert (d / "back.vtm").read_bytes() == (d / "m.vtm").read_bytes()
    capsys.readouterr()
    code = run(["unseal", "--in", str(d / "m.sealed"), "--key", str(d / "other.json"),
                "--out", str(d / "no.vtm")])  # fmt: skip
    assert code == 2 and "tampered" in capsys.readouterr().err and not (d / "no.vtm").exists()
    (d / "junk.json").write_text("{")
    code = run(["unseal", "--in", str(d / "m.sealed"), "--key", str(d / "junk.json"),
                "--out", str(d / "no.vtm")])  # fmt: skip
    assert code == 2 and "key" in capsys.readouterr().err


@pytest.mark.parametrize("split", ["all", "first:2", "last:1", "slalom"])
def test_enclave_run_gives_the_plain_predictions(files, capsys, split):
    code = run(["enclave", "run", "--model", str(files / "m.vtm"), "--split", split,
                "--batch", "150", "--json"])  # fmt: skip
    result = out_json(capsys)
    assert code == 0 and result["same_predictions_as_plain"] and result["examples"] == 450
    assert result["ledger"]["calls"] >= 3 and len(result["measurement"]) == 64
    if split == "slalom":
        assert result["agreement_with_float"] > 0.9 and result["freivalds_error_bound"] < 1e-14
    else:
        assert result["identical_outputs"]


def test_enclave_run_refuses_a_bad_split(files, capsys):
    assert run(["enclave", "run", "--model", str(files / "m.vtm"), "--split", "middle"]) == 2
    assert "bad split" in capsys.readouterr().err


def test_attest_and_verify_quote_reject_replays_and_other_models(files, capsys):
    d = files
    assert run(["-q", "enclave", "device", "--id", "cam-1", "--out", str(d / "dev.json"),
                "--seed", "4"]) == 0  # fmt: skip
    common = ["--model", str(d / "m.vtm"), "--split", "last:1"]
    state = ["--state", str(d / "nonces.json")]
    capsys.readouterr()

    def quote(name, nonce):
        assert run(["-q", "enclave", "attest", *common, "--device", str(d / "dev.json"),
                    "--nonce", nonce, "--out", str(d / name)]) == 0  # fmt: skip
        capsys.readouterr()

    def check(name, *args):
        return run(["enclave", "verify-quote", "--quote", str(d / name), "--device-pub",
                    str(d / "dev.pub.json"), *state, "--json", *(args or common)])  # fmt: skip

    assert run(["enclave", "challenge", *state]) == 0
    nonce = capsys.readouterr().out.strip()
    quote("q.json", nonce)
    assert check("q.json") == 0 and out_json(capsys)["accepted"]
    assert check("q.json") == 1 and "replayed" in out_json(capsys)["reason"]
    quote("self.json", "00ff" * 8)  # a nonce the device chose: never issued here
    assert check("self.json") == 1 and "did not issue" in out_json(capsys)["reason"]
    assert run(["enclave", "challenge", *state]) == 0
    quote("q2.json", capsys.readouterr().out.strip())
    assert check("q2.json", "--model", str(d / "m.vtm"), "--split", "last:2") == 1
    assert "wrong measurement" in out_json(capsys)["reason"]
    (d / "bad.json").write_text('{"format": "vtrust-quote"}')
    code = check("bad.json")
    assert code == 2 and "quote" in capsys.readouterr().err


def test_malformed_identities_public_keys_and_nonce_lists_are_one_line_errors(files, capsys):
    d = files
    assert run(["-q", "enclave", "device", "--id", "cam-9", "--out", str(d / "d9.json"),
                "--seed", "9"]) == 0  # fmt: skip
    common = ["--model", str(d / "m.vtm"), "--split", "all"]
    assert run(["-q", "enclave", "attest", *common, "--device", str(d / "d9.json"),
                "--nonce", "ab", "--out", str(d / "q9.json")]) == 0  # fmt: skip
    bad = {"identity.json": '{"format": "vtrust-device-identity", "device": "x", "root": "zz"}',
           "pub.json": '{"device": "cam-9"}', "seen.json": '{"not": "a ledger"}',
           "junk.json": "[" * 50_000}  # fmt: skip
    for name, text in bad.items():
        (d / name).write_text(text)
    capsys.readouterr()
    for junk in ("identity.json", "junk.json"):
        code = run(["enclave", "attest", *common, "--device", str(d / junk), "--nonce", "ab",
                    "--out", str(d / "never.json")])  # fmt: skip
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "internal" not in err
        assert not (d / "never.json").exists()
    verify = ["enclave", "verify-quote", "--quote", str(d / "q9.json"), *common]
    for pub, seen in (("pub.json", "none.json"), ("junk.json", "none.json"),
                      ("d9.pub.json", "seen.json")):  # fmt: skip
        code = run([*verify, "--device-pub", str(d / pub), "--state", str(d / seen)])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "internal" not in err, (pub, seen)
    assert (d / "seen.json").read_text() == '{"not": "a ledger"}'  # untouched
    assert not (d / "none.json").exists()
