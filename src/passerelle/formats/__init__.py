"""Pure wire-format codecs: bytes and dicts in, values out, no I/O."""
