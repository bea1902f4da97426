"""``vtrust defense list`` and ``vtrust defense replay``."""

from __future__ import annotations

from pathlib import Path

import click

from vtrust.cli.common import (
    DEFENSE_HELP,
    Group,
    data_option,
    echo_listing,
    emit_json,
    load_npy,
    model_options,
    target_splits,
)


@click.group(cls=Group)
def defense() -> None:
    """Query-side defenses: detectors and prediction poisoning."""


@defense.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def defense_list(as_json: bool) -> None:
    """List the named defense configurations (the names every `--defense` takes)."""
    from vtrust.catalog import listing

    entries = listing("defenses")
    if as_json:
        emit_json({"defenses": [e.to_json() for e in entries]})
        return
    echo_listing(entries)


@defense.command("replay")
@click.option(
    "--target",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Model file of the deployed model.",
)
@click.option("--defense", "defenses", multiple=True, required=True, help=DEFENSE_HELP)
@click.option(
    "--queries",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="A .npy array (N, C, H, W) of one client's queries, in order.",
)
@click.option("--client", default="client", show_default=True, help="The client id.")
@click.option(
    "--state",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of detector states: loaded if present, saved after the replay.",
)
@click.option(
    "--seed",
    type=int,
    default=None,
    help="Seed the defenses' secret randomness (INSECURE: reproducible replays); "
    "default: a CSPRNG.",
)
@data_option
@model_options
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def defense_replay(target, defenses, queries, client, state, seed, data, options, as_json):
    """Send a client's logged queries through the defenses and report any alarm."""

    from vtrust.defenses.deployment import Deployment
    from vtrust.defenses.detection import StreamDetector
    from vtrust.defenses.preset import leaf_defenses
    from vtrust.errors import QueryRefused

    x = load_npy(queries)
    model, splits = target_splits(target, data, options)
    oracle = Deployment.of(defenses).oracle(model, splits.victim, seed=seed)
    detectors = [d for d in leaf_defenses(oracle.defenses) if isinstance(d, StreamDetector)]
    for d in detectors:
        if state is not None and (state / f"{d.name}.npz").exists():
            d.load_state(state / f"{d.name}.npz")
    refused = None
    try:
        oracle.query(x, client_id=client)
    except QueryRefused as exc:
        refused = exc.defense
    if state is not None:
        from vtrust._io import output_folder

        output_folder(state)
        for d in detectors:
            d.save_state(state / f"{d.name}.npz")
    record = oracle.client(client)
    flagged = record.flagged_at or {}
    result = {
        "client": client,
        "queries": int(len(x)),
        "answered": record.queries,
        "refused_by": refused,
        "defenses": {
            name: {"flagged": name in flagged, "at_query": flagged.get(name)}
            for name in (d.name for d in oracle.defenses)
        },
    }
    if as_json:
        emit_json(result)
        return
    click.echo(f"{client}: {len(x)} queries, {record.queries} answered")
    for name, flag in result["defenses"].items():
        state_text = f"flagged at query {flag['at_query']}" if flag["flagged"] else "not flagged"
        click.echo(f"  defense {name}: {state_text}")
