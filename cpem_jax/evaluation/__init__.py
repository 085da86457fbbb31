"""Metrics and benchmark protocols.

Metrics: `landmarks` (NME, boxes, yaw bins), `expression` (MAE per unit and in the paper's ten
categories), `identity` (identity consistency vs the first frame), `pose` (degrees),
`geometry_error` (similarity ICP + point-to-plane RMSE), `temporal` (frame-to-frame change).
Protocols: `feafa.evaluate_feafa`, `aflw2000.evaluate_aflw2000`, `micc.evaluate_micc`,
`facewarehouse.evaluate_facewarehouse`; reports: `report.write_report`.
"""
