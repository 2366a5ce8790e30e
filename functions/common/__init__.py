"""Domain code and data shared by several functions: the database schema, migrations, reference data."""
