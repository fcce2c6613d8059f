"""Durable work: procedures recorded before they act, so that whatever was interrupted is
finished at the next start."""
