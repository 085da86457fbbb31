"""Per-video fitting of the morphable model with a locked identity (analysis by synthesis)."""
