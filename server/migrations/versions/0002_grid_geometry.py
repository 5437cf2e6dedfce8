"""Grid polygons and history, unit boundaries, the gazetteer, reference-data tokens.

PostgreSQL: PostGIS ``geometry(MULTIPOLYGON, 4326)`` columns with GIST indexes.
SQLite (the embedded default): the same WKB in a BLOB; the bounding-box float columns that
both backends carry let SQLite prefilter, and Shapely's STRtree does the rest in memory.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 09:00:00

"""
import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry
from sqlalchemy.dialects import postgresql, sqlite

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def _geom(bind):
    """PostGIS geometry on PostgreSQL (always SRID 4326), WKB bytes on SQLite."""
    if bind.dialect.name == "postgresql":
        return Geometry("MULTIPOLYGON", srid=4326, spatial_index=False)
    return sa.LargeBinary()


def _json():
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql') \
        .with_variant(sqlite.JSON(), 'sqlite')


def _bbox():
    return [sa.Column('min_lng', sa.Float(), nullable=True),
            sa.Column('min_lat', sa.Float(), nullable=True),
            sa.Column('max_lng', sa.Float(), nullable=True),
            sa.Column('max_lat', sa.Float(), nullable=True)]


def upgrade():
    bind = op.get_bind()
    pg = bind.dialect.name == "postgresql"
    if pg:
        op.execute("CREATE EXTENSION IF NOT EXISTS postgis")

    with op.batch_alter_table('grids', schema=None) as batch_op:
        batch_op.add_column(sa.Column('geom', _geom(bind), nullable=True))
        for column in _bbox():
            batch_op.add_column(column)
        batch_op.add_column(sa.Column('geom_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('version', sa.Integer(), server_default='0',
                                      nullable=False))
        batch_op.add_column(sa.Column('valid_from', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_grids_geom_hash'), ['geom_hash'], unique=False)
    if pg:
        op.create_index('ix_grids_geom', 'grids', ['geom'], unique=False,
                        postgresql_using='gist')
    else:
        op.create_index('ix_grids_bbox', 'grids', ['min_lng', 'max_lng', 'min_lat', 'max_lat'],
                        unique=False)

    op.create_table('grid_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('grid_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('geom', _geom(bind), nullable=False),
    sa.Column('geom_hash', sa.String(length=64), nullable=False),
    sa.Column('valid_from', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['grid_id'], ['grids.id'], name=op.f('fk_grid_versions_grid_id_grids')),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_grid_versions_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_grid_versions')),
    sa.UniqueConstraint('grid_id', 'version', name=op.f('uq_grid_versions_grid_id_version'))
    )

    op.create_table('unit_boundaries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('geom', _geom(bind), nullable=False),
    *_bbox(),
    sa.Column('geom_hash', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'],
                            name=op.f('fk_unit_boundaries_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_unit_boundaries')),
    sa.UniqueConstraint('unit_id', name=op.f('uq_unit_boundaries_unit_id'))
    )
    if pg:
        op.create_index('ix_unit_boundaries_geom', 'unit_boundaries', ['geom'], unique=False,
                        postgresql_using='gist')

    op.create_table('gazetteer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('aliases', _json(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('lng', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['unit_id'], ['units.id'], name=op.f('fk_gazetteer_unit_id_units')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_gazetteer')),
    sa.UniqueConstraint('unit_id', 'name', name=op.f('uq_gazetteer_unit_id_name'))
    )
    with op.batch_alter_table('gazetteer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_gazetteer_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_gazetteer_unit_id'), ['unit_id'], unique=False)

    op.create_table('geo_state',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('token', sa.String(length=32), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_geo_state'))
    )


def downgrade():
    op.drop_table('geo_state')
    with op.batch_alter_table('gazetteer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_gazetteer_unit_id'))
        batch_op.drop_index(batch_op.f('ix_gazetteer_name'))
    op.drop_table('gazetteer')
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index('ix_unit_boundaries_geom', table_name='unit_boundaries')
        op.drop_index('ix_grids_geom', table_name='grids')
    else:
        op.drop_index('ix_grids_bbox', table_name='grids')
    op.drop_table('unit_boundaries')
    op.drop_table('grid_versions')
    with op.batch_alter_table('grids', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grids_geom_hash'))
        for column in ('valid_from', 'version', 'geom_hash', 'max_lat', 'max_lng', 'min_lat',
                       'min_lng', 'geom'):
            batch_op.drop_column(column)
