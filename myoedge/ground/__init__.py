"""Ground every layer stands on: the error types the CLI maps to exit codes, atomic file writes,
progress on stderr and lazy package exports. Imports nothing from the layers above it."""

from myoedge.ground.errors import FormatError, InputError  # noqa: F401
