"""Plain-text views for the terminal commands (``tail`` and ``stats``).

Every value comes from captured events, i.e. from whoever called the host app: each is passed through
:func:`~.text.printable`, so escape sequences in it are shown, never run by the terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .text import printable


def _dash(value: Any) -> str:
    return "-" if value is None or value == "" else printable(str(value))


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}ms"


def call_line(call: Mapping[str, Any]) -> str:
    """One call on one line: ``time verb path status duration user`` (fixed-width, ``-`` when unset)."""
    return (
        f"{_dash(call.get('time')):<23}  {_dash(call.get('verb')):<7} {_dash(call.get('path')):<40} "
        f"{_dash(call.get('status')):>3} {_ms(call.get('duration_ms')):>10}  {_dash(call.get('user_id'))}"
    )


def stats_table(stats: Mapping[str, Any]) -> str:
    """The totals table printed by ``stats``."""
    lines = [
        f"{'calls':<18}{stats['calls']}",
        f"{'calls/min (avg)':<18}{stats['calls_per_minute']:.1f}",
        f"{'calls last 60 s':<18}{stats['calls_last_minute']}",
        f"{'error rate':<18}{stats['error_rate'] * 100:.1f}%  ({stats['errors']} with status >= 400)",
        f"{'p50':<18}{_ms(stats['p50_ms'])}",
        f"{'p95':<18}{_ms(stats['p95_ms'])}",
        "",
        f"{'VERB':<7} {'ROUTE':<40} {'CALLS':>7} {'ERRORS':>7} {'P50':>10} {'P95':>10}",
    ]
    for route in stats["routes"]:
        lines.append(
            f"{_dash(route['verb']):<7} {_dash(route.get('route', route['path'])):<40} {route['calls']:>7}"
            f" {route['errors']:>7} {_ms(route.get('p50_ms')):>10} {_ms(route.get('p95_ms')):>10}"
        )
    if not stats["routes"]:
        lines.append("(no calls)")
    return "\n".join(lines)
