"""Access tickets: seenby issues one per recorded access; a clip store checks it (check.py) offline."""
