"""Study: SafetyNets-style verifiable inference — quantised accuracy of the trained
quadratic networks, and what proving costs against width, depth and batch, up to the
TIMIT-shaped network of the SafetyNets paper.

    python experiments/proofs.py [--dataset digits|idx:DIR] [--seed S] [--no-timit]
        [--repeats N]

Writes ``results/proofs/results.json``, ``report.md`` and PNG plots. Every ratio is
measured within one run (medians of a few repeats).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics(portable=False)  # one thread; timings on the CPU's own fastest code paths

import numpy as np  # noqa: E402
from over_seeds import add_seed_options, run_over_seeds, run_study  # noqa: E402

from vtrust import progress  # noqa: E402
from vtrust.catalog import load_entry  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.models import accuracy  # noqa: E402
from vtrust.models.recipes import train_model  # noqa: E402
from vtrust.proofs import field as F  # noqa: E402
from vtrust.proofs.costs import measure, random_circuit  # noqa: E402
from vtrust.proofs.protocol import noninteractive_soundness, soundness  # noqa: E402
from vtrust.proofs.quantize import (  # noqa: E402
    circuit_predictions,
    compile_network,
    finetune_quantized,
    quantize_inputs,
)
from vtrust.report import Report, line_plot  # noqa: E402

TIMIT = [1845, 2000, 2000, 2000, 183]  # SafetyNets' TIMIT network, batch 512
SAFETYNETS_TIMIT = {"execute_s": 22.7, "extra_prover_s": 1.2, "verify_s": 1.7}


def sweep_point(widths, batch, seed, protocol="fused", repeats=5):
    circuit = random_circuit(widths, batch, seed=seed)
    rng = np.random.default_rng(seed)
    x = circuit.pad_inputs(F.elements(rng.integers(0, 16, (circuit.batch, widths[0]))))
    costs = measure(circuit, x, protocol=protocol, repeats=repeats).to_json()
    return {"widths": widths, "batch": batch, **costs}


def trained(args) -> dict:
    splits = load_dataset(args.dataset, seed=args.seed)
    circuit_name = "quad-digits" if args.dataset == "digits" else "quad-mnist"
    params = load_entry("circuits", circuit_name).params
    progress.stage(f"[proofs] training the quadratic network on {args.dataset}")
    model = train_model(splits, "quad", seed=args.seed).model
    tuned = finetune_quantized(
        model, splits.victim, params.spec, epochs=params.finetune_epochs, seed=args.seed
    )
    compiled = compile_network(tuned, splits.input_shape, params.spec, params.batch)
    preds = circuit_predictions(compiled, splits.test.x)
    circuit = compiled.circuit
    x = circuit.pad_inputs(F.elements(quantize_inputs(splits.test.x[: circuit.batch], params.spec)))
    return {
        "circuit": circuit_name,
        "float_accuracy": accuracy(model, splits.test),
        "circuit_accuracy": float((preds == splits.test.y).mean()),
        "bound_bits": compiled.bound_bits,
        "soundness": soundness(circuit)["total"],
        "noninteractive_bits": noninteractive_soundness(circuit)["bits"],
        "costs": measure(circuit, x, repeats=args.repeats).to_json(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-timit", action="store_true", help="skip the TIMIT shape")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timings: the median of this many runs"
    )
    parser.add_argument("--sweep-points", type=int, default=None,
                        help="only the first N points of each sweep (a reduced run)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("results/proofs"))
    add_seed_options(parser, jobs=1)
    args = parser.parse_args()
    if args.sweep_points is not None and args.sweep_points < 1:
        parser.error("--sweep-points must be at least 1")
    points = slice(args.sweep_points)
    if run_over_seeds(__file__, args, study="proofs"):
        return
    started = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"dataset": args.dataset, "seed": args.seed, "trained": trained(args)}
    progress.stage("[proofs] width, depth and batch sweeps")
    results["width"] = [
        sweep_point([w, w, w, 16], 64, args.seed, repeats=args.repeats)
        for w in progress.bar([64, 128, 256, 512, 1024][points], desc="width")
    ]
    results["depth"] = [
        sweep_point([256] * (d + 1) + [16], 64, args.seed, repeats=args.repeats)
        for d in progress.bar([1, 2, 3, 4][points], desc="depth")
    ]
    results["batch"] = [
        sweep_point([256, 256, 256, 16], b, args.seed, repeats=args.repeats)
        for b in progress.bar([16, 64, 256, 512][points], desc="batch")
    ]
    if not args.no_timit:
        progress.stage("[proofs] TIMIT shape (batch 512, 1845-2000-2000-2000-183)")
        results["timit"] = sweep_point(TIMIT, 512, args.seed, repeats=args.repeats)
        results["timit_layered"] = sweep_point(
            TIMIT, 512, args.seed, protocol="layered", repeats=args.repeats
        )
        results["safetynets_timit"] = SAFETYNETS_TIMIT
    results["seconds"] = time.perf_counter() - started
    write_report(results, args)


def write_report(results: dict, args) -> None:
    t = results["trained"]
    report = Report(f"Verifiable inference (SafetyNets) — seed {args.seed}")
    c = t["costs"]
    report.add_text(
        f"Trained quadratic network on {args.dataset}, circuit `{t['circuit']}`: float accuracy "
        f"{t['float_accuracy']:.4f}, circuit (quantised, exact over F_p) accuracy "
        f"{t['circuit_accuracy']:.4f}; largest value bound 2^{max(t['bound_bits']):.1f} < p/2; "
        f"interactive soundness error ≤ {t['soundness']:.2g}, Fiat–Shamir security "
        f"{t['noninteractive_bits']:.1f} bits (challenges in F_p²). A batch of 64: field forward "
        f"{c['field_forward_s'] * 1000:.1f} ms ({c['field_over_torch']:.1f}× torch float32), "
        f"extra prover {c['extra_prover_s'] * 1000:.1f} ms, verifier {c['verify_s'] * 1000:.1f} "
        f"ms, proof {c['proof_kb']:.1f} KB."
    )
    headers = ["shape", "batch", "protocol", "torch ms", "field ms", "field/torch",
               "extra prover/field", "verify/field", "proof KB"]  # fmt: skip

    def row(r):
        return [
            "-".join(map(str, r["widths"])), r["batch"], r["protocol"],
            f"{r['torch_forward_s'] * 1000:.1f}",
            f"{r['field_forward_s'] * 1000:.1f}", f"{r['field_over_torch']:.1f}",
            f"{r['extra_prover_over_field']:.3f}", f"{r['verify_over_field']:.3f}",
            f"{r['proof_kb']:.1f}",
        ]  # fmt: skip

    for key, title in (("width", "Width"), ("depth", "Depth"), ("batch", "Batch")):
        report.add_table(f"{title} sweep", headers, [row(r) for r in results[key]])
    if "timit" in results:
        r = results["timit"]
        ref = results["safetynets_timit"]
        layered = results.get("timit_layered")
        report.add_table("TIMIT shape (SafetyNets' reference C++: 22.7 s + 1.2 s, verifier 1.7 s)",
                         headers, [row(r)] + ([row(layered)] if layered else []))  # fmt: skip
        report.add_text(
            f"TIMIT: execute + prove {r['prove_s']:.2f} s against SafetyNets' "
            f"{ref['execute_s'] + ref['extra_prover_s']:.1f} s; extra prover "
            f"{r['extra_prover_s'] * 1000:.1f} ms ({100 * r['extra_prover_over_field']:.1f} % of "
            f"the field forward pass; layer by layer "
            + (f"{100 * layered['extra_prover_over_field']:.1f} %" if layered else "not run")
            + f"); verifier {r['verify_s'] * 1000:.1f} ms "
            f"({100 * r['verify_over_field']:.1f} %)."
        )
    rows = results["width"]
    xs = [r["widths"][1] for r in rows]
    report.add_figure(
        "ratios_width.png",
        line_plot(
            {
                "field / torch": (xs, [r["field_over_torch"] for r in rows]),
                "extra prover / field": (xs, [r["extra_prover_over_field"] for r in rows]),
                "verifier / field": (xs, [r["verify_over_field"] for r in rows]),
            },
            title="Cost ratios against width (batch 64, 3 layers)",
            xlabel="width",
            ylabel="ratio",
            logx=True,
        ),
        "Cost ratios against layer width.",
    )  # fmt: skip
    report.add_figure(
        "proof_size.png",
        line_plot(
            {key: ([r["widths"][1] if key != "batch" else r["batch"] for r in results[key]]
                   if key != "depth" else [len(r["widths"]) - 1 for r in results[key]],
                   [r["proof_kb"] for r in results[key]]) for key in ("width", "depth", "batch")},
            title="Proof size", xlabel="width / layers / batch", ylabel="KB", logx=True,
        ),
        "Proof size (prover messages) against width, depth and batch.",
    )  # fmt: skip
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[proofs] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
