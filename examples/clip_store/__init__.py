"""An example clip store that serves a clip only against a seenby access ticket."""
