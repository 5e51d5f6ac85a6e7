"""photoqa's storage: SQLAlchemy models, engine set-up, migrations and the one writer."""
