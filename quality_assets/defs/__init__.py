from quality_assets.defs.definitions import build_definitions, defs

__all__ = ["build_definitions", "defs"]
