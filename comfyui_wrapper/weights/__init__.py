"""Model weights: manifest, refs (weights a workflow names), declared (properties.models), folders (the map), cache, download."""
