"""Pictures for people: previews, overlays, landmark drawings."""
