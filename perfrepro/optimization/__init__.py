"""Optimization track (PIE-style) on ENAMEL tasks: input generation, timed programs, prompts."""
