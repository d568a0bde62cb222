"""Indexes for regulators' exports and transparency reports, which filter by period.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Reports count access entries recorded in a period; exports filter by kind and period too.
    op.create_index("ix_ledger_entries_kind_recorded_at", "ledger_entries", ["kind", "recorded_at_us"])
    # Reports count deletion requests by when they were filed.
    op.create_index("ix_deletion_requests_filed_at", "deletion_requests", ["filed_at_us"])


def downgrade() -> None:
    op.drop_index("ix_deletion_requests_filed_at", table_name="deletion_requests")
    op.drop_index("ix_ledger_entries_kind_recorded_at", table_name="ledger_entries")
