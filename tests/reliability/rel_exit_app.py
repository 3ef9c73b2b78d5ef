"""A process that serves ``k`` requests with one adapter, then exits normally (the exit-flush tests).

``python rel_exit_app.py KIND BASE_URI K`` with the middleware's extra settings as JSON in ``REL_SETTINGS``. It
serves the app on 127.0.0.1, sends itself ``k`` requests, prints ``SERVED`` and returns from ``main``: the queue is
flushed by the core's exit hook only (nothing here calls ``flush`` or ``shutdown``).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rel_support import hit, served, settings_for


def main() -> None:
    kind, base_uri, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    extra = json.loads(os.environ.get("REL_SETTINGS", "{}"))
    with served(kind, settings_for(base_uri, **extra), shutdown=False) as app:
        hit(app.url, "exit", k)
        assert app.agent.snapshot()["sent"] == 0  # still queued: the exit flush is what sends them
    print("SERVED", flush=True)


if __name__ == "__main__":
    main()
