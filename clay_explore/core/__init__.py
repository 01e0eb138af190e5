"""Infrastructure every stage shares: the workspace on disk, the sensor registry, errors, progress."""
