"""Study: weight scrambling (Chaotic Weights) — how useless a scrambled copy is, what
unscrambling costs, and what a thief who steals the scrambled weights gains by
fine-tuning them against training from scratch on the same data.

    python experiments/scrambling.py [--dataset digits|idx:DIR] [--seed S] [--keys N]

Writes ``results/scrambling/results.json``, ``report.md`` and a PNG plot.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from vtrust.reproducible import numerics_record, pin_numerics

pin_numerics()  # one thread, portable code paths: before numpy and torch load

import numpy as np  # noqa: E402
from over_seeds import add_seed_options, run_over_seeds, run_study  # noqa: E402

from vtrust import progress  # noqa: E402
from vtrust.attacks.direct import DirectStealing, DirectStealingParams  # noqa: E402
from vtrust.data import load_dataset  # noqa: E402
from vtrust.keying import ProtectionKey  # noqa: E402
from vtrust.models import accuracy  # noqa: E402
from vtrust.models.recipes import train_model  # noqa: E402
from vtrust.protect.scramble import TensorPermutation, scramble, unscramble  # noqa: E402
from vtrust.report import Report, bar_plot  # noqa: E402
from vtrust.timing import median_seconds  # noqa: E402

FRACTIONS = [0.01, 0.1]
SALT = bytes(16)  # a fixed salt: the study is reproducible (its keys are seeded too)


def unscramble_ms(model, key) -> dict[str, float]:
    """Median milliseconds to unscramble each weight tensor (permutations derived)."""
    out = {}
    for name, tensor in scramble(model, key, SALT).state_dict().items():
        values = tensor.numpy()
        out[name] = 1000 * median_seconds(
            lambda n=name, v=values: TensorPermutation.derive(key, n, v.shape, SALT).invert(v), 7
        )
    return out


def study(arch: str, splits, args) -> dict:
    progress.stage(f"[scrambling] {arch}: train, scramble with {args.keys} keys")
    model = train_model(splits, arch, seed=args.seed).model
    keys = [ProtectionKey.generate(seed=args.seed * 1000 + i) for i in range(args.keys)]
    scrambled_acc = [accuracy(scramble(model, k, SALT), splits.test) for k in keys]
    exact = all(
        unscramble(scramble(model, k, SALT), k, SALT).state_dict()[n].numpy().tobytes()
        == t.numpy().tobytes()
        for k in keys[:3]
        for n, t in model.state_dict().items()
    )
    thief = {}
    for scale in (0.1, 1.0):
        progress.stage(f"[scrambling] {arch}: thief fine-tunes at {scale}× the learning rate")
        attack = DirectStealing(DirectStealingParams(fractions=FRACTIONS, finetune_lr_scale=scale))
        thief[str(scale)] = attack.run(
            scramble(model, keys[0], SALT),
            splits.attacker,
            splits.test,
            victim=model,
            seed=args.seed,
        )
    return {
        "accuracy": accuracy(model, splits.test),
        "chance": 1 / splits.n_classes,
        "scrambled_accuracy": {
            "per_key": scrambled_acc,
            "mean": float(np.mean(scrambled_acc)),
            "max": float(np.max(scrambled_acc)),
            "share_within_chance_plus_2pt": float(
                np.mean(np.array(scrambled_acc) <= 1 / splits.n_classes + 0.02)
            ),
        },
        "unscrambling_bit_exact": exact,
        "unscramble_ms_per_tensor": unscramble_ms(model, keys[0]),
        "thief": thief,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keys", type=int, default=20, help="keys to scramble with")
    parser.add_argument("--archs", default="mlp,cnn")
    parser.add_argument("--out", type=Path, default=Path("results/scrambling"))
    add_seed_options(parser, jobs=3)
    args = parser.parse_args()
    if run_over_seeds(__file__, args, study="scrambling"):
        return
    started = time.perf_counter()
    splits = load_dataset(args.dataset, seed=args.seed)
    results = {"dataset": args.dataset, "seed": args.seed, "fractions": FRACTIONS,
               "models": {a: study(a, splits, args) for a in args.archs.split(",")}}  # fmt: skip
    results["seconds"] = time.perf_counter() - started
    write_report(results, args)


def write_report(results: dict, args) -> None:
    report = Report(f"Weight scrambling — {results['dataset']}, seed {results['seed']}")
    rows = []
    for arch, r in results["models"].items():
        s = r["scrambled_accuracy"]
        rows.append([arch, f"{r['accuracy']:.4f}", f"{s['mean']:.4f}", f"{s['max']:.4f}",
                     f"{100 * s['share_within_chance_plus_2pt']:.0f} %",
                     "yes" if r["unscrambling_bit_exact"] else "NO",
                     f"{max(r['unscramble_ms_per_tensor'].values()):.2f}"])  # fmt: skip
    report.add_table(
        f"Scrambled copies ({args.keys} keys; chance = {1 / 10:.2f})",
        ["model", "accuracy", "scrambled mean", "scrambled max", "keys ≤ chance + 2 pt",
         "bit-exact", "max ms / tensor"], rows,
    )  # fmt: skip
    rows = []
    for arch, r in results["models"].items():
        for scale, thief_rows in r["thief"].items():
            for t in thief_rows:
                rows.append([arch, scale, f"{t['fraction']:.0%}", t["samples"],
                             f"{t['stolen_accuracy']:.4f}", f"{t['finetuned_accuracy']:.4f}",
                             f"{t['scratch_accuracy']:.4f}"])  # fmt: skip
    report.add_table(
        "Thief with the scrambled weights: fine-tune vs train from scratch (attacker split)",
        ["model", "lr scale", "data", "samples", "as stolen", "fine-tuned", "from scratch"], rows,
    )  # fmt: skip
    bars = {
        f"{arch} {t['fraction']:.0%} {kind}": t[f"{kind}_accuracy"]
        for arch, r in results["models"].items()
        for t in r["thief"]["1.0"]
        for kind in ("finetuned", "scratch")
    }
    report.add_figure(
        "thief.png",
        bar_plot(
            bars,
            title="Thief accuracy: scrambled weights fine-tuned vs scratch",
            ylabel="test accuracy",
        ),  # fmt: skip
        "A thief's test accuracy after fine-tuning the scrambled weights (lr scale 1) "
        "against training the same architecture from scratch on the same data.",
    )
    report.add_text(f"Total time {results['seconds']:.0f} s.")
    results["numerics"] = numerics_record()
    report.write(args.out, results, json_name="results.json")
    progress.stage(f"[scrambling] wrote {args.out / 'report.md'}")


if __name__ == "__main__":
    run_study(main)
