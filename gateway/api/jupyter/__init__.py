"""Jupyter's remote-kernel protocol (the API of Jupyter Kernel Gateway that ``jupyter server --gateway-url``
speaks), served on JupyCell's own kernels: kernel specs, kernel models, and the kernel websocket relay."""
