"""The PostgreSQL adapter: migrations, named queries, the pool and repositories."""
