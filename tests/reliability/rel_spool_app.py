"""A Flask app wrapped in moesifwsgi under werkzeug, as its own process, for the spool tests (``kill -9``, two
processes on one directory).

``python rel_spool_app.py BASE_URI`` with the middleware's extra settings as JSON in ``REL_SETTINGS``. It prints
``URL <base url>``, then reads commands from stdin, one a line: ``snapshot`` prints the agent's counters as one JSON
line, ``flush`` flushes (which also makes the spool try the collector now) and prints ``FLUSHED``; ``exit`` or the
end of stdin returns from ``main`` (the core's exit hook flushes).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rel_support import served, settings_for


def main() -> None:
    base_uri = sys.argv[1]
    extra = json.loads(os.environ.get("REL_SETTINGS", "{}"))
    with served("wsgi", settings_for(base_uri, **extra), shutdown=False) as app:
        print("URL", app.url, flush=True)
        for line in sys.stdin:
            command = line.strip()
            if command == "snapshot":
                print(json.dumps(app.agent.snapshot()), flush=True)
            elif command == "flush":
                app.agent.flush(5)
                print("FLUSHED", flush=True)
            elif command == "exit":
                break


if __name__ == "__main__":
    main()
