"""Infrastructure shared by every domain: the database object, errors, the audit chain,
the outbox, idempotency and personal-data encryption.

Nothing here imports from the rest of ``server``; the domain packages may import it.
"""
