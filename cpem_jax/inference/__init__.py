"""Estimating coefficients with a trained PE-Net checkpoint."""
