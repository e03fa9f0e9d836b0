"""Pure packet formats: bytes <-> small typed records, build and parse, checksums. No I/O."""
