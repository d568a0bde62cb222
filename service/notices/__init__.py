"""Notices: what customers are told (webhooks through a transactional outbox, and a live stream)."""
