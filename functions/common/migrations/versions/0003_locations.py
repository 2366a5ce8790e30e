"""collection points (location function): the table, its geo and text indexes, and the data

Revision ID: 0003_locations
Revises: 0002_events
Create Date: 2026-12-01

PostgreSQL: PostGIS `geography` point generated from latitude/longitude with a GiST index (nearby
search), pg_trgm GIN index on the search text (name and address search without a provider).
SQLite (`eco2 dev`): a (latitude, longitude) index for the bounding-box prefilter. Both load the
760 points of functions/location/data/collection_points.csv; the loader is idempotent, so
`python -m functions.location.load` refreshes a database later.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_locations"
down_revision = "0002_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    if postgres:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_table(
        "collection_points",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("source_pk", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("road_address", sa.String(300), nullable=False, server_default=""),
        sa.Column("lot_address", sa.String(300), nullable=False, server_default=""),
        sa.Column("place_description", sa.Text(), nullable=False, server_default=""),
        sa.Column("latitude", sa.Float()),
        sa.Column("longitude", sa.Float()),
        sa.Column("coordinates", sa.String(10), nullable=False, server_default=""),
        sa.Column("hours", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("hours_note", sa.Text(), nullable=False, server_default=""),
        sa.Column("phone", sa.String(40), nullable=False, server_default=""),
        sa.Column("place_url", sa.String(500), nullable=False, server_default=""),
        sa.Column("collection_items", sa.Text(), nullable=False, server_default=""),
        sa.Column("introduction", sa.Text(), nullable=False, server_default=""),
        sa.Column("store_category", sa.String(30), nullable=False),
        sa.Column("pickup_categories", sa.String(200), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False, server_default=""),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("source", "source_pk", name="uq_collection_points_source"),
    )
    if postgres:
        op.execute(
            "ALTER TABLE collection_points ADD COLUMN geog geography(Point, 4326) GENERATED ALWAYS AS "
            "(ST_SetSRID(ST_MakePoint(longitude, latitude), 4326)::geography) STORED"
        )
        op.execute("CREATE INDEX ix_collection_points_geog ON collection_points USING gist (geog)")
        op.execute("CREATE INDEX ix_collection_points_search ON collection_points USING gin (search_text gin_trgm_ops)")
    else:
        op.create_index("ix_collection_points_lat_lon", "collection_points", ["latitude", "longitude"])
    op.create_index("ix_collection_points_store_category", "collection_points", ["store_category"])

    from functions.location.load import load_points

    load_points(bind)


def downgrade() -> None:
    # the extensions stay: other schemas may use them, and dropping PostGIS is not this table's call
    op.drop_table("collection_points")
