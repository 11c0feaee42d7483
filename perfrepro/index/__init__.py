"""Solution indices: chromadb (the pipeline's store) and exact numpy search (the reference)."""
