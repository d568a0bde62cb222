"""Small programs that use seenby from the outside."""
