"""Custom node packs (custom_nodes.json, failed imports, checks) and the node -> pack catalogue."""
