"""Shared building blocks: params schema, artifact contracts, geometry, meshes, rendering."""
