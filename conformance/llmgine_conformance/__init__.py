"""The llmgine conformance suite: proves a store or a database keeps llmgine's promises."""

from __future__ import annotations
