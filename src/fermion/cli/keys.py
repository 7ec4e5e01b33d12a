"""`fermion keys ...`: the inference server's API keys from the command line."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import typer
from rich.markup import escape
from rich.table import Table

from fermion.cli.app import new_app
from fermion.cli.output import console, print_json
from fermion.entities import ApiKeyRecord
from fermion.serving.keys import format_rate
from fermion.workspace import Workspace

app = new_app("Create, list and revoke the API keys the inference server accepts.")

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _workspace() -> Workspace:
    return Workspace.open()


def _when(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"


def keys_table(records: Sequence[ApiKeyRecord], now: datetime) -> Table:
    """One row per key; never the salt or hash, which only the server needs."""
    table = Table("name", "key id", "scopes", "rate", "created (UTC)", "expires (UTC)", "status")
    for r in records:
        table.add_row(
            escape(r.name),
            r.key_id,
            escape(", ".join(r.scopes)),
            format_rate(r.rate_per_s),
            _when(r.created_at),
            _when(r.expires_at),
            r.status(now),
        )
    return table


@app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="A name for the key, e.g. the app using it."),
    scopes: list[str] = typer.Option(
        ..., "--scope", help="predict:<model>, predict:* or admin; repeat for several."
    ),
    rate: str = typer.Option(None, "--rate", help="At most this many requests: 100/s, 6000/m."),
    expires: str = typer.Option(None, "--expires", help="30d, 12h, 15m or an ISO date."),
    as_json: bool = JsonOption,
) -> None:
    """Create a key and print it once: only a hash of it is stored."""
    with _workspace() as ws:
        record, key = ws.keys.create(name, scopes, rate=rate, expires=expires)
    if as_json:
        print_json({**record.to_dict(), "key": key})
        return
    out = console()
    expiry = "never expires" if record.expires_at is None else f"expires {_when(record.expires_at)}"
    out.print(
        f"created API key {escape(record.name)} (id {record.key_id}): "
        f"{escape(', '.join(record.scopes))}, rate {format_rate(record.rate_per_s)}, {expiry}"
    )
    out.print(key, markup=False, soft_wrap=True)  # never broken across lines
    out.print("This key will not be shown again: store it now.")
    out.print(
        "Send it with each request as the header: Authorization: Bearer <key>"
        " (or X-API-Key: <key>)",
        markup=False,
    )


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List keys: id, scopes, rate, created, expires, status (active, expired, revoked)."""
    with _workspace() as ws:
        records = ws.keys.list()
    if as_json:
        print_json(records)
        return
    console().print(
        keys_table(records, datetime.now(UTC))
        if records
        else "no API keys yet: fermion keys create --name NAME --scope predict:MODEL"
    )


@app.command("revoke")
def revoke(
    name: str = typer.Argument(..., help="The key's name."), as_json: bool = JsonOption
) -> None:
    """Revoke a key for good; running servers refuse it within seconds."""
    with _workspace() as ws:
        record = ws.keys.revoke(name)
    if as_json:
        print_json(record)
        return
    console().print(f"revoked API key {escape(record.name)} (id {record.key_id})")
