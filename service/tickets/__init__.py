"""Access tickets: log before access."""
