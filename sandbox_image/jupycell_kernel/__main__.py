"""``python -m jupycell_kernel -f CONNECTION_FILE``: the sandbox image's kernel (what ``ipykernel_launcher`` does).

The working directory is dropped from ``sys.path`` before anything is imported, exactly as ``ipykernel_launcher``
does; IPython puts it back (``InteractiveShellApp.init_path``), so user code sees the same ``sys.path``.
"""

import sys
from pathlib import Path

if __name__ == "__main__":
    if sys.path[0] == "" or Path(sys.path[0]) == Path.cwd():
        del sys.path[0]

    from jupycell_kernel.app import JupyCellKernelApp

    JupyCellKernelApp.launch_instance()
