"""Private set intersection: KKRT (OT-based, two-party) and ECDH on X25519 (two-party and
multi-party), input hygiene.

Entry points: :func:`psi` (any number of parties), the role aliases :func:`psi_sender`,
:func:`psi_receiver`, :func:`psi_leader`, :func:`psi_follower`, :class:`PsiParams`,
:class:`PsiResult`; :func:`psi_kkrt` (two-party, OT-based, :mod:`privfin.psi.kkrt`); id
cleaning :class:`IdPolicy` / :func:`clean_ids`. The Security section is in
:mod:`privfin.psi.protocol`.
"""

from privfin.psi.ids import (
    DuplicateIdError,
    EmptyInputError,
    EmptyIntersectionError,
    HygieneReport,
    IdPolicy,
    InvalidIdError,
    clean_ids,
    is_valid_credit_code,
    is_valid_resident_id,
)
from privfin.psi.kkrt import psi_kkrt
from privfin.psi.protocol import PsiParams, PsiResult, psi, psi_follower, psi_leader, psi_receiver, psi_sender
from privfin.psi.query import (
    PayloadTooLargeError,
    QueryResult,
    load_list,
    prepare_list,
    query_client,
    query_server,
    query_sync,
)
from privfin.psi.unbalanced import (
    CacheError,
    ClientCache,
    OprfKey,
    ServeReport,
    StaleCacheError,
    UnbalancedResult,
    load_large_set,
    prepare_large_set,
    unbalanced_client,
    unbalanced_server,
    unbalanced_sync,
)

__all__ = [
    "PsiParams", "PsiResult", "psi", "psi_sender", "psi_receiver", "psi_leader", "psi_follower",
    "psi_kkrt",
    "IdPolicy", "HygieneReport", "clean_ids", "is_valid_resident_id", "is_valid_credit_code",
    "InvalidIdError", "DuplicateIdError", "EmptyInputError", "EmptyIntersectionError",
    "OprfKey", "prepare_large_set", "load_large_set", "unbalanced_server", "unbalanced_client", "unbalanced_sync",
    "UnbalancedResult", "ServeReport", "ClientCache", "CacheError", "StaleCacheError",
    "prepare_list", "load_list", "query_server", "query_client", "query_sync", "QueryResult", "PayloadTooLargeError",
]
