"""Prometheus collectors and the /metrics exposition; no business logic."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.responses import Response

from service.vocabulary import DeletionStatus

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "seenby_http_requests_total", "HTTP requests by route template, method and status.",
    ["route", "method", "status"], registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "seenby_http_request_duration_seconds", "HTTP request latency by route template, method and status.",
    ["route", "method", "status"], registry=REGISTRY,
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ENTRIES_RECORDED = Counter(
    "seenby_entries_recorded_total", "Ledger entries recorded by this process, by kind.",
    ["kind"], registry=REGISTRY,
)


def metrics_response() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
TREE_SIZE = Gauge(
    "seenby_log_tree_size", "Entries in the Merkle log (the latest signed checkpoint's size).",
    registry=REGISTRY,
)
ENTRIES_WAITING = Gauge(
    "seenby_log_entries_waiting", "Committed entries not yet integrated into the Merkle log.",
    registry=REGISTRY,
)
INTEGRATION_LAG = Histogram(
    "seenby_log_integration_lag_seconds", "Time from an entry's commit to its integration.",
    registry=REGISTRY,
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)
CHECKPOINTS_SIGNED = Counter(
    "seenby_log_checkpoints_signed_total", "Checkpoints signed by this process.", registry=REGISTRY,
)
DELETION_REQUESTS = Gauge(
    "seenby_deletion_requests", "Deletion requests by status.", ["status"], registry=REGISTRY,
)
DELETION_REQUESTS_OVERDUE = Gauge(
    "seenby_deletion_requests_overdue", "Deletion requests past due_at and not completed or rejected.",
    registry=REGISTRY,
)
ACCESSES_FLAGGED = Counter(
    "seenby_accesses_flagged_total",
    "Accesses recorded with a flag (access_after_deletion, unconsented, needs_review), by flag.",
    ["flag"], registry=REGISTRY,
)
for _status in DeletionStatus:
    DELETION_REQUESTS.labels(status=_status.value)
for _flag in ("access_after_deletion", "unconsented", "needs_review"):
    ACCESSES_FLAGGED.labels(flag=_flag)
TICKETS_ISSUED = Counter(
    "seenby_tickets_issued_total", "Access tickets issued (replays included).", registry=REGISTRY,
)
TICKETS_REFUSED = Counter(
    "seenby_tickets_refused_total",
    "Access tickets refused, by each flag that refused them (one refusal may count under several).",
    ["flag"], registry=REGISTRY,
)
TICKET_SECONDS = Histogram(
    "seenby_ticket_seconds", "A ticket request from recording to its ticket or refusal.",
    registry=REGISTRY, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
for _flag in ("access_after_deletion", "unconsented", "authorization_invalid"):
    TICKETS_REFUSED.labels(flag=_flag)
INDEX_KEYS = Gauge(
    "seenby_customer_index_keys", "Customers in the customer index (its latest log leaf's count).",
    registry=REGISTRY,
)
INDEX_UPDATE_SECONDS = Histogram(
    "seenby_customer_index_update_seconds", "Updating the customer index in one integration pass.",
    registry=REGISTRY, buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
WITNESS_COSIGNED_SIZE = Gauge(
    "seenby_witness_cosigned_size",
    "The largest tree size each witness has cosigned, as far as the log knows.",
    ["witness"], registry=REGISTRY,
)
WITNESS_FAILURES = Counter(
    "seenby_witness_failures_total",
    "Submissions to a witness that got no cosignature, by kind (timeout, unreachable, http_<status>, "
    "bad_cosignature).", ["witness", "kind"], registry=REGISTRY,
)
WITNESS_CONFLICTS = Counter(
    "seenby_witness_conflicts_total",
    "422 answers: the witness holds a checkpoint inconsistent with this log's (a split view).",
    ["witness"], registry=REGISTRY,
)
WITNESS_SECONDS = Histogram(
    "seenby_witness_request_seconds", "One add-checkpoint request to a witness.", ["witness"],
    registry=REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WITNESSED_CHECKPOINT_AGE = Gauge(
    "seenby_witnessed_checkpoint_age_seconds",
    "How much older the served checkpoint (the newest the witness quorum cosigned) is than the newest "
    "signed one; it grows while the quorum is missed.",
    registry=REGISTRY,
)
NOTICES_PENDING = Gauge(
    "seenby_notices_pending", "Notices written and not yet delivered (nor dead-lettered).", registry=REGISTRY,
)
NOTICE_OLDEST_PENDING_AGE = Gauge(
    "seenby_notice_oldest_pending_age_seconds",
    "How long ago the oldest notice still pending was written (0 with none pending).", registry=REGISTRY,
)
NOTICE_DELIVERIES = Counter(
    "seenby_notice_deliveries_total",
    "Attempts to deliver a notice, by type and outcome (delivered, failed, dead_lettered).",
    ["type", "outcome"], registry=REGISTRY,
)
NOTICES_DEAD = Gauge(
    "seenby_notices_dead_letters",
    "Notices dead-lettered: they failed for longer than SEENBY_WEBHOOK_RETRY_SECONDS; an admin can "
    "replay them.", registry=REGISTRY,
)
NOTICE_SECONDS = Histogram(
    "seenby_notice_delivery_seconds", "One webhook request to the receiver.",
    registry=REGISTRY, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENT_STREAMS = Gauge(
    "seenby_event_streams", "Server-Sent Event streams (GET /v1/me/events) open in this process.",
    registry=REGISTRY,
)
EXPORT_STREAMS = Gauge(
    "seenby_export_streams",
    "Exports and manifests this process is streaming (at most SEENBY_EXPORT_STREAMS_PER_PROCESS).",
    registry=REGISTRY,
)
