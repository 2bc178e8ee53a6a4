"""The HTTP face of CDM: the Starlette app, the GraphQL endpoint and schema."""
