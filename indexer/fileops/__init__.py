"""Acting on files safely: hashing, moving, linking, restoring, sidecars, and a trash
that follows the freedesktop.org specification. No database, no settings: the apply
and undo of ``photoqa dupes --apply`` (``indexer.commands.apply``) journal around these."""
