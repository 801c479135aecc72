"""Units of work: each public method is one database transaction around the pure engine."""
