"""The family's metadata hook: each distribution of this monorepo pins its sibling distributions to its own version.

Every package folder links to this file as ``hatch_family.py``; its sdist holds a copy of the file, so the sdist
builds standalone. The version itself comes from the root ``VERSION`` file through hatchling's ``[tool.hatch.version]``
(an sdist carries it in ``PKG-INFO``); this hook turns the package's ``[tool.hatch.metadata.hooks.custom]`` table
into its dependencies::

    [tool.hatch.metadata.hooks.custom]
    family = ["moesif-core"]            # pinned: moesif-core==<VERSION>
    dependencies = ["requests>=2.25"]   # as written

so ``pip install moesifwsgi`` can never resolve a sibling to an original of the same name on the package index.
"""

from __future__ import annotations

from typing import Any

from hatchling.metadata.plugin.interface import MetadataHookInterface


class FamilyMetadataHook(MetadataHookInterface):
    """Fills ``dependencies``: the package's own ones, then each family member at exactly this version."""

    def update(self, metadata: dict[str, Any]) -> None:
        version = metadata["version"]
        own = list(self.config.get("dependencies", []))
        family = [f"{name}=={version}" for name in self.config.get("family", [])]
        metadata["dependencies"] = own + family
