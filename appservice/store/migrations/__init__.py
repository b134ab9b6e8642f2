"""The alembic migration scripts of the store schema, shipped inside the package.

``appservice.store.migrate`` runs them from here, so an installed package (editable or not)
always finds them; the top-level ``migrations/alembic.ini`` points the ``alembic`` command here.
"""
