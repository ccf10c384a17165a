"""`shelter node` on a new laptop enrolled with a replacement code (`shelter hq enroll
--replace`): rebuild the shelter from HQ before serving, and say what came back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from shelter.commands.common import ShelterCommandError
from shelter.core.node import NodeContext
from shelter.domain.supplies import JST

if TYPE_CHECKING:
    from sync.rebuild import Rebuilt


def rebuild_if_pending(ctx: NodeContext, retry_wait: float = 1.5) -> None:
    """Rebuild the shelter from HQ's history if this node was enrolled with a replacement
    code and has not finished yet (also a rebuild a lost link cut off in an earlier run);
    print what came back. ShelterCommandError when HQ refuses or the link stays down: the
    same command started again goes on where it stopped."""
    from shelter.core import meta
    from sync import client, history, protocol, rebuild

    if not history.pending(ctx.db):
        return
    hq_url = meta.get(ctx.db, "hq_url") or ""
    click.echo(f"rebuilding shelter {ctx.shelter_id} from HQ's records ...")
    try:
        done = rebuild.rebuild(ctx, hq_url, first_wait=retry_wait, say=click.echo)
    except (OSError, client.SimpleWebsocketError, client.SyncRefused,
            protocol.ProtocolError) as error:
        so_far = rebuild.summary(ctx.db).events
        raise ShelterCommandError(
            f"the rebuild from HQ stopped after {so_far} events ({error}); start the node "
            "again with the same command: it goes on where it stopped") from None
    for line in report(ctx, done):
        click.echo(line)


def report(ctx: NodeContext, done: Rebuilt, now: datetime | None = None) -> list[str]:
    """The lines that say what a rebuild brought."""
    lines = [f"rebuilt from HQ: {done.households} households, {done.people} people, "
             f"{done.events} events of shelter {ctx.shelter_id}",
             f"  this node continues it as {ctx.node_id} (a new node id); the old node's "
             f"ids ({', '.join(done.inherited) or 'none'}) are kept, never sent again, "
             "and their cards still scan here"]
    if done.newest:
        made = datetime.fromisoformat(done.newest)
        minutes = max(0, int(((now or datetime.now(UTC)) - made).total_seconds() // 60))
        age = f"{minutes} minutes" if minutes < 60 else f"{minutes // 60} hours"
        lines.append(f"  newest record: {made.astimezone(JST):%Y-%m-%d %H:%M} Japan time "
                     f"({age} ago): what the old node recorded after it last synced is "
                     "not at HQ")
    else:
        lines.append("  HQ held no record made by the shelter's old node")
    if done.quarantined:
        lines.append(f"  {done.quarantined} events could not be applied: kept aside with "
                     "their reasons (sync_quarantine)")
    lines.append("staff accounts are not copied from HQ: add them again with "
                 "`shelter user add`")
    return lines
