"""Sources: one thread per device kind, turning raw input into points and log records."""
