"""Composition root: settings, app factory, database, logging, i18n, security and the CLI."""
