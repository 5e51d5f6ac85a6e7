"""Near-duplicate matching: exact Hamming search, pixel verification, verdicts, groups.

Pure code over in-memory records (see :mod:`indexer.match.engine`); the database and the
CLI wire it in. Modules: ``mih`` (multi-index hashing), ``align`` (phase correlation),
``verify`` (evidence), ``verdict`` (thresholds, verdicts, descriptions), ``groups``
(components and keeper), ``params`` (settings), ``hashindex`` (the candidate index),
``engine`` (orchestration).
"""
import importlib

# Loaded on first use (PEP 562): the engine pulls in numba and scipy (~1 s), which a
# command that only reads settings or the database must not pay.
_HOME = {"Matcher": "engine", "MatchRecord": "engine", "PairEvidence": "engine", "Group": "groups",
         "KeeperInfo": "groups", "build_groups": "groups", "MatchParams": "params",
         "DEFAULT_GROUP_VERDICTS": "verdict", "VERDICTS": "verdict", "MatchThresholds": "verdict",
         "describe": "verdict"}


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


__all__ = [
    "DEFAULT_GROUP_VERDICTS", "Group", "KeeperInfo", "MatchParams",
    "MatchRecord", "MatchThresholds", "Matcher", "PairEvidence", "VERDICTS", "build_groups", "describe",
]
