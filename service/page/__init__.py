"""The customer page at /app/: static ES modules that read and verify the caller's own history."""
