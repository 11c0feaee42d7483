"""Offline sentence encoder, embedding cache, query-side linear adapter, losses and training loop."""
