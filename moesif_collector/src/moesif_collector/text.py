"""One rule for control characters in captured text, shared by the page code and the terminal commands.

Captured events are written by whoever calls the host app: a JWT ``sub`` of ``ESC]0;title BEL ESC[2J`` would
retitle the terminal, clear the screen or plant a link if ``tail`` printed it raw. Control characters are C0
(U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F). The page decodes a base64 body to text only when it has
none but layout whitespace (tab, newline, carriage return); the terminal commands print every one as a visible
escape (``\\x1b``), so a line stays one line and the terminal runs nothing it was sent.
"""

from __future__ import annotations

import re

CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_LAYOUT = re.compile("[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f]")


def has_control(text: str) -> bool:
    """Whether ``text`` holds a control character other than layout whitespace (tab, newline, carriage return)."""
    return _CONTROL_BUT_LAYOUT.search(text) is not None


def _escape(match: re.Match[str]) -> str:
    return f"\\x{ord(match.group()):02x}"


def printable(text: str) -> str:
    """``text`` with every control character replaced by its visible escape, safe to print to a terminal."""
    return CONTROL_CHARS.sub(_escape, text)
