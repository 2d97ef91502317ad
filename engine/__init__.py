"""The adaptive engine: learning content, challenge selection, answer checking and scoring.

Pure Python: no web framework, no database, no settings (enforced by import-linter).
"""
