"""Near-duplicate matching: exact Hamming search, pixel verification, verdicts, groups.

Pure code over in-memory records (see :mod:`indexer.match.engine`); the database and the
CLI wire it in. Modules: ``mih`` (multi-index hashing), ``align`` (phase correlation),
``verify`` (evidence), ``verdict`` (thresholds, verdicts, descriptions), ``groups``
(components and keeper), ``params`` (settings), ``hashindex`` (the candidate index),
``engine`` (orchestration).
"""
from indexer.match.engine import Matcher, MatchRecord, PairEvidence
from indexer.match.groups import Group, KeeperInfo, build_groups
from indexer.match.params import MatchParams
from indexer.match.verdict import DEFAULT_GROUP_VERDICTS, VERDICTS, MatchThresholds, describe

__all__ = [
    "DEFAULT_GROUP_VERDICTS", "Group", "KeeperInfo", "MatchParams",
    "MatchRecord", "MatchThresholds", "Matcher", "PairEvidence", "VERDICTS", "build_groups", "describe",
]
