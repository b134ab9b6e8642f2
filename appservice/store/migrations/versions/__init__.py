"""One alembic version per schema change, named ``NNNN_slug.py`` with revision ID ``NNNN``."""
