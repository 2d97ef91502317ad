"""The adaptive engine: learning content, challenge selection, answer checking and scoring.

Pure Python: no web framework, no database, no settings (enforced by import-linter). The
selector also runs compiled, when `make install` could build it from these very sources
(engine/native.py).
"""

from engine import native as _native

if _native.usable():
    __path__.insert(0, str(_native.NATIVE))
