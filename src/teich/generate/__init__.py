"""Generating agent traces from prompts: ``teich init`` and ``teich generate``."""

from teich.generate.config import Config

__all__ = ["Config"]
