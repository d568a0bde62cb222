"""Witnesses (C2SP tlog-witness, tlog-cosignature v1, tlog-policy): cosigning checkpoints so that
the log cannot show one history to one reader and another to someone else."""
