"""``MaskData``: the original package's public masking helper, over the core's masking rule.

The original's own tests (and some users' code) import ``moesifdjango.masks.MaskData``; the middleware itself masks
through the core (:mod:`moesif_core.masking`), so this is the same rule with the original's signatures:

- ``mask_headers(headers, masks)``: a new dict of the headers with lower-case names, without those named in
  ``masks`` (any case). ``None`` headers give ``None``; ``None`` masks give ``headers`` itself.
- ``mask_body(body, masks)``: ``body`` (parsed JSON) with every key named in ``masks`` removed at any depth, inside
  arrays too, in place. ``None`` body or masks give ``body`` itself.

Both work on the class and on an instance (the original's ``mask_body`` only on an instance). One difference, on
purpose and as in the middleware: body keys match case-insensitively (the original's matched exact-case).
"""

from __future__ import annotations

from typing import Any, Collection, Dict, Mapping, Optional

from moesif_core.masking import mask_body, mask_headers, normalise


class MaskData:
    """Remove masked headers and body keys, as the original ``moesifdjango.masks.MaskData`` did."""

    @classmethod
    def mask_headers(
        cls, headers: Optional[Mapping[str, Any]], masks: Optional[Collection[str]]
    ) -> Optional[Mapping[str, Any]]:
        if headers is None or masks is None:
            return headers
        lowered: Dict[str, Any] = {str(k).lower(): v for k, v in headers.items()}
        mask_headers(lowered, normalise(masks))
        return lowered

    @classmethod
    def mask_body(cls, body: Any, masks: Optional[Collection[str]]) -> Any:
        if body is None or masks is None:
            return body
        return mask_body(body, normalise(masks))
