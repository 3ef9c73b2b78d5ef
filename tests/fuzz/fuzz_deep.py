"""The deep fuzz session: ``nox -s fuzz`` (not part of the default suite; its file name keeps pytest from
collecting it there). Each target gets ``MOESIF_FUZZ_EXAMPLES`` examples (default 10,000; an adapter's are split
over its three callback configurations) with a random seed each run; hypothesis prints the seed of a failing run.

A failing example is shrunk, then appended to ``regressions.json``, which the default suite replays
(``test_fuzz_regressions.py``): commit it with the fix. Each test prints how many examples it ran.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import pytest
from fuzz_checks import ADAPTERS, release, run_check, to_json
from fuzz_strategies import ingest_requests, out_requests, page_requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rel_fuzz import CALLBACKS, requests_

EXAMPLES = int(os.environ.get("MOESIF_FUZZ_EXAMPLES", "10000"))
REGRESSIONS = Path(__file__).resolve().parent / "regressions.json"


def deep(n: int) -> Callable[[Any], Any]:
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,  # a new random seed every run
        database=None,
        report_multiple_bugs=False,
    )


def fuzz(target: str, config: Optional[str], strategy: Any, n: int) -> None:
    """Run ``n`` examples; on failure keep the shrunk example (the last one that failed) and re-raise."""
    ran = 0
    failed: list[Any] = []

    @deep(n)
    @given(example=strategy)
    def run(example: Any) -> None:
        nonlocal ran
        ran += 1
        try:
            run_check(target, config, example)
        except BaseException:
            failed[:] = [example]
            raise

    try:
        run()
    except BaseException:
        if failed:
            keep(target, config, failed[0])
        raise
    finally:
        print(f"\nfuzz {target}{f'[{config}]' if config else ''}: {ran} examples")


def keep(target: str, config: Optional[str], example: Any) -> None:
    kept = json.loads(REGRESSIONS.read_text()) if REGRESSIONS.exists() else []
    entry = {"target": target, "config": config, "example": to_json(example), "found_by": "nox -s fuzz"}
    if entry not in kept:
        kept.append(entry)
        REGRESSIONS.write_text(json.dumps(kept, indent=1, ensure_ascii=True) + "\n")


@pytest.fixture(autouse=True, scope="module")
def _released() -> Iterator[None]:
    yield
    release()


PER_CONFIG = math.ceil(EXAMPLES / len(CALLBACKS))


@pytest.mark.parametrize("config", list(CALLBACKS))
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_adapter(adapter: str, config: str) -> None:
    fuzz(adapter, config, requests_, PER_CONFIG)


@pytest.mark.parametrize(
    ("target", "strategy"), [("outgoing", out_requests), ("ingest", ingest_requests), ("page", page_requests)]
)
def test_target(target: str, strategy: st.SearchStrategy[Any]) -> None:
    fuzz(target, None, strategy, EXAMPLES)
