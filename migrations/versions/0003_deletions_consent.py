"""Deletion requests and their tasks, consent, troubleshooting grants, access decisions.

These tables hold current state (a request's status, a customer's consent); every change to
them is also a ledger entry in the customer's chain, which is what makes it auditable.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deletion_requests",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(8), nullable=False),  # "clips" or "all"
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("filed_at_us", sa.BigInteger, nullable=False),
        sa.Column("due_at_us", sa.BigInteger, nullable=False),
        sa.Column("completed_at_us", sa.BigInteger),
        sa.Column("rejected_at_us", sa.BigInteger),
        sa.Column("reject_reason", sa.String(1000)),
    )
    op.create_index("ix_deletion_requests_customer", "deletion_requests", ["customer_id", "filed_at_us"])
    op.create_index("ix_deletion_requests_status_due", "deletion_requests", ["status", "due_at_us"])
    op.create_table(
        "deletion_request_clips",
        sa.Column("request_id", sa.String(36), sa.ForeignKey("deletion_requests.id"), primary_key=True),
        sa.Column("clip_id", sa.String(128), primary_key=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
    )
    op.create_index("ix_deletion_request_clips_customer_clip", "deletion_request_clips",
                    ["customer_id", "clip_id"])
    op.create_table(
        "deletion_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("request_id", sa.String(36), sa.ForeignKey("deletion_requests.id"), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
        sa.Column("evidence", sa.String(4000)),
        sa.Column("completed_at_us", sa.BigInteger),
    )
    op.create_index("ix_deletion_tasks_service_status", "deletion_tasks", ["service", "status", "id"])
    op.create_index("ix_deletion_tasks_request", "deletion_tasks", ["request_id"])
    op.create_table(
        "consents",
        sa.Column("customer_id", sa.String(128), primary_key=True),
        sa.Column("human_review", sa.Boolean, nullable=False),
        sa.Column("model_training", sa.Boolean, nullable=False),
        sa.Column("updated_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "troubleshooting_grants",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("clip_id", sa.String(128), nullable=False),
        sa.Column("note", sa.String(1000)),
        sa.Column("granted_at_us", sa.BigInteger, nullable=False),
        sa.Column("expires_at_us", sa.BigInteger, nullable=False),
        sa.Column("withdrawn_at_us", sa.BigInteger),
    )
    op.create_index("ix_troubleshooting_grants_customer_clip", "troubleshooting_grants",
                    ["customer_id", "clip_id"])
    op.create_table(
        "access_decisions",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("customer_id", sa.String(128), nullable=False),
        sa.Column("clip_id", sa.String(128), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(8), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("decided_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    for table in ("access_decisions", "troubleshooting_grants", "consents", "deletion_tasks",
                  "deletion_request_clips", "deletion_requests"):
        op.drop_table(table)
