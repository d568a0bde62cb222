"""Objections: a customer says, on the record, that it disagrees with an access."""
