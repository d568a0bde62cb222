"""Transparency reports: what was accessed, why and by whom, and how deletion requests fared."""
