"""The ComfyUI child process and its protocol: process (states), launch, client (HTTP + websocket), progress."""
