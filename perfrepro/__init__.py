"""perfrepro: reproducible research on retrieval-augmented, efficiency-aware code generation."""

__version__ = "0.1.0"
