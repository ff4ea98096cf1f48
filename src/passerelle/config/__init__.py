"""Configuration as code: one YAML file, parsed once and strictly, resolved into a ``Config``."""

from passerelle.config.loader import Config, load_config, parse_config

__all__ = ["Config", "load_config", "parse_config"]
