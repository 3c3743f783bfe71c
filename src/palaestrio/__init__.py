"""palaestrio: palaestrAI's experiment executor on trio structured concurrency."""

__version__ = "0.1.0"
