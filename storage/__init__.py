"""Metadata and document storage: the one error tree, the database (models, migrations, repository) and the
encrypted blob stores. The lowest layer: imports nothing from ``auth/`` or ``gateway/``."""
