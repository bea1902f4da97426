"""Study: simulated enclave split execution — what a thief gets from the outside part,
how often a tampering host is caught, and throughput under the enclave cost model for
no enclave, MLCapsule (all inside), partitions and Slalom.

    python experiments/enclave.py [--dataset digits|idx:DIR] [--seed S] [--trials N]

Writes ``results/enclave/results.json``, ``report.md`` and PNG plots. Throughput is
modelled: the real computation is timed on this CPU and the stated cost model
(``vtrust.enclave.costs``) adds crossings, copies and paging; "GPU host" repeats it with
the host's linear algebra 30× faster, the setting Slalom's speed-ups come from.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics(portable=False)  # one thread; timings on the CPU's own fastest code paths

import numpy as np  # noqa: E402
import torch  # noqa: E402
from over_seeds import add_seed_options, run_over_seeds, run_study  # noqa: E402
from study_options import shares  # noqa: E402

from vtrust import keystream, progress  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.enclave import modp  # noqa: E402
from vtrust.enclave.costs import CostModel  # noqa: E402
from vtrust.enclave.freivalds import FreivaldsCheck  # noqa: E402
from vtrust.enclave.runtime import one_thread  # noqa: E402
from vtrust.enclave.slalom import SlalomNetwork  # noqa: E402
from vtrust.evaluation.enclave import stealing_curve, tamper_detection, throughput  # noqa: E402
from vtrust.models import build_model  # noqa: E402
from vtrust.models.recipes import train_model  # noqa: E402
from vtrust.report import Report, line_plot  # noqa: E402
from vtrust.timing import median_seconds  # noqa: E402

GPU_HOST = "GPU host (30×)"
HOSTS = {"CPU host": CostModel(), GPU_HOST: CostModel(host_speedup=30.0)}


def freivalds_ratio(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    stream = keystream.from_seed(seed)  # test data, not secrets
    x, w = modp.random(stream, (n, n)), rng.integers(-127, 128, (n, n))
    check = FreivaldsCheck.prepare(w, stream)
    y = modp.matmul(x, w)

    check.check(x, y)
    prepared = modp.Weights(w)  # the recomputing side's best: weights converted once
    all_cores = median_seconds(lambda: modp.matmul(x, prepared))
    with one_thread():  # inside the enclave, where the product would be recomputed
        recompute = median_seconds(lambda: modp.matmul(x, prepared))
        checking = median_seconds(lambda: check.check(x, y))
    return {"n": n, "recompute_s": recompute, "recompute_all_cores_s": all_cores,
            "check_s": checking, "ratio": checking / recompute,
            "ratio_all_cores": checking / all_cores}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--arch", default="cnn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=1000, help="tampering trials")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--fractions", default="0.1,1.0",
                        help="shares of the attacker split a thief trains on")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("results/enclave"))
    add_seed_options(parser, jobs=1)
    args = parser.parse_args()
    fractions = shares(parser, "--fractions", args.fractions)
    if run_over_seeds(__file__, args, study="enclave"):
        return
    started = time.perf_counter()
    splits = load_dataset(args.dataset, seed=args.seed)
    progress.stage(f"[enclave] training the {args.arch} victim")
    model = train_model(splits, args.arch, seed=args.seed).model.eval()
    calibration = torch.from_numpy(splits.victim.x[:512]).float()
    x = torch.from_numpy(splits.test.x[: args.batch]).float()
    results: dict = {"dataset": args.dataset, "arch": args.arch, "seed": args.seed,
                     "cost_models": {k: v.to_json() for k, v in HOSTS.items()}}  # fmt: skip

    progress.stage("[enclave] Slalom vs the plain quantised network")
    net = SlalomNetwork(model, calibration)  # outputs do not depend on the pads
    test = torch.from_numpy(splits.test.x).float()
    net.precompute(1, len(test))
    out = net.forward(test)
    with torch.no_grad():
        float_pred = model(test).argmax(1)
    results["slalom"] = {
        "identical_to_plain_quantised": bool(torch.equal(out, net.forward_plain(test))),
        "agreement_with_float": float((out.argmax(1) == float_pred).float().mean()),
        "accuracy": float((out.argmax(1).numpy() == splits.test.y).mean()),
        "float_accuracy": float((float_pred.numpy() == splits.test.y).mean()),
        "weight_bits": [int(np.abs(op.weight).max()).bit_length() + 1 for op in net.ops],
    }
    progress.stage(f"[enclave] tampering: {args.trials} trials")
    results["tampering"] = tamper_detection(net, x, trials=args.trials, seed=args.seed)
    progress.stage("[enclave] Freivalds against recomputing")
    results["freivalds"] = [freivalds_ratio(n, args.seed) for n in (256, 512, 1024)]
    progress.stage("[enclave] throughput under the cost model")
    results["throughput"] = {
        name: throughput(model, calibration, x, cost=cost) for name, cost in HOSTS.items()
    }
    progress.stage("[enclave] throughput of a wide MLP (1024-2048-2048-10, random weights)")
    wide = build_model("mlp", (1, 32, 32), 10, {"hidden": [2048, 2048]}, seed=args.seed).eval()
    noise = np.random.default_rng(args.seed).random((512, 1, 32, 32), dtype=np.float32)
    noise = torch.from_numpy(noise)
    results["throughput_wide"] = {
        name: throughput(wide, noise, noise[: args.batch], cost=cost)
        for name, cost in HOSTS.items()
    }
    results["speedup_slalom_gpu_host"] = {  # the figure Slalom's paper reports
        label: next(row["speedup_over_all_inside"] for row in results[key][GPU_HOST]
                    if row["split"] == "slalom")
        for label, key in (("digits CNN", "throughput"), ("wide MLP", "throughput_wide"))
    }  # fmt: skip
    progress.stage("[enclave] stealing from the outside part")
    results["stealing"] = stealing_curve(
        model,
        splits.attacker,
        splits.test,
        fractions=fractions,
        seed=args.seed,
    )
    results["seconds"] = time.perf_counter() - started
    write_report(results, args)


def _crossing_kb(ledger: dict) -> float:
    return (ledger.get("bytes_in", 0) + ledger.get("bytes_out", 0)) / 1024


def write_report(results: dict, args) -> None:
    report = Report(f"Enclave split execution — {results['dataset']} {results['arch']}, "
                    f"seed {results['seed']}")  # fmt: skip
    s, t = results["slalom"], results["tampering"]
    report.add_text(
        f"Slalom (p = 2^24 − 3, weights ≤ {max(s['weight_bits'])} bits, 8-bit activations): "
        f"outputs identical to the plain quantised network: {s['identical_to_plain_quantised']}; "
        f"accuracy {s['accuracy']:.4f} (float {s['float_accuracy']:.4f}), agreement with the "
        f"float model {s['agreement_with_float']:.4f}. Tampering with one element of one "
        f"layer's outsourced result: detected {t['detected']} / {t['trials']} "
        f"(error bound per layer {t['error_bound']:.1e})."
    )
    report.add_table(
        "Freivalds' check against recomputing the product (n × n by n × n, mod p; check "
        "and recomputation on one thread, as inside the enclave; last column: recomputation "
        "on all cores)",
        ["n", "recompute ms", "check ms", "ratio", "recompute ms (all cores)", "ratio"],
        [[r["n"], f"{1000 * r['recompute_s']:.2f}", f"{1000 * r['check_s']:.3f}",
          f"{r['ratio']:.4f}", f"{1000 * r['recompute_all_cores_s']:.2f}",
          f"{r['ratio_all_cores']:.4f}"] for r in results["freivalds"]],
    )  # fmt: skip
    tables = [(f"{results['arch']} on {results['dataset']}", results["throughput"]),
              ("wide MLP 1024-2048-2048-10", results["throughput_wide"])]  # fmt: skip
    for label, host, rows in ((label, h, r) for label, t in tables for h, r in t.items()):
        report.add_table(
            f"Modelled throughput, {label}, batch {args.batch} — {host}",
            ["split", "images/s", "× all-inside", "calls", "KB crossing", "inside ms", "host ms"],
            [[r["split"], f"{r['images_per_second']:.0f}", f"{r['speedup_over_all_inside']:.2f}",
              f"{r['ledger_per_batch'].get('calls', 0):.0f}",
              f"{_crossing_kb(r['ledger_per_batch']):.0f}",
              f"{1000 * r['ledger_per_batch'].get('inside_s', 0):.2f}",
              f"{1000 * (r['seconds_per_batch'] - r['ledger_per_batch'].get('total_s', 0)):.2f}"]
             for r in rows],
        )  # fmt: skip
    rows = results["stealing"]
    report.add_table(
        "Stealing from the outside part (thief fine-tunes with the attacker split)",
        ["split", "inside units", "data", "as stolen", "fine-tuned", "from scratch"],
        [[r["split"], r["inside_units"], f"{r['fraction']:.0%}", f"{r['stolen_accuracy']:.4f}",
          f"{r['finetuned_accuracy']:.4f}", f"{r['scratch_accuracy']:.4f}"] for r in rows],
    )  # fmt: skip
    curves = {}
    for mode in ("first", "last"):
        for fraction in (0.1, 1.0):
            pts = [r for r in rows if r["split"].startswith(mode) or r["split"] == "first:0"]
            pts = [r for r in pts if r["fraction"] == fraction]
            curves[f"{mode}:K, {fraction:.0%} data"] = (
                [r["inside_units"] for r in pts],
                [r["finetuned_accuracy"] for r in pts],
            )
    report.add_figure(
        "stealing.png",
        line_plot(curves, title="Thief accuracy vs units kept inside",
                  xlabel="units inside the enclave", ylabel="thief test accuracy"),
        "The thief's accuracy after fine-tuning the outside part (inside layers "
        "re-initialised), against the number of units kept inside.",
    )  # fmt: skip
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[enclave] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
