"""UI format -> API format: a port of the ComfyUI frontend's "Save (API format)" (entry point: convert.py)."""
