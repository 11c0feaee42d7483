"""PIE-style self-play data augmentation: proposed programs, their optimizations, and the filters
that keep only novel, correct, non-trivial rewrites that are measurably faster (stage self_play)."""
