"""Server-Sent Events of a customer's new entries (CONTRACT "Notices and objections")."""
