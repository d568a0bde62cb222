"""The kinds of entry the ledger records: plain, so that the audit, notices and settings read them
without importing the web app."""

from __future__ import annotations

from enum import StrEnum


class EntryKind(StrEnum):
    """Every kind of entry this service records."""

    ACCESS = "access"
    ACCESS_REFUSED = "access_refused"
    ACCESS_DECISION = "access_decision"
    CONSENT_CHANGED = "consent_changed"
    TROUBLESHOOTING_GRANTED = "troubleshooting_granted"
    TROUBLESHOOTING_WITHDRAWN = "troubleshooting_withdrawn"
    DELETION_REQUESTED = "deletion_requested"
    DELETION_TASK_COMPLETED = "deletion_task_completed"
    DELETION_COMPLETED = "deletion_completed"
    DELETION_REJECTED = "deletion_rejected"
    OBJECTION = "objection"
