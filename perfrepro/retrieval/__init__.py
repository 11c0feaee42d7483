"""Retrieval metrics (Hit/MRR/MAP/NDCG@k) and the evaluation loop over test queries."""
