"""Consent, troubleshooting grants and access decisions: what covers an access to a clip."""
