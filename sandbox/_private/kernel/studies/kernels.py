"""The kernel manager of study runs: IPC sockets, and the kernel process's own output kept in a log file.

papermill's nbclient engine creates the kernel manager from the class and the traitlets config that
:func:`~sandbox._private.kernel.studies.runner.run_study` hands it. The config sets ``transport = "ipc"`` with
the sockets in a private temporary folder (so no port is opened and ipykernel does not warn about unencrypted
TCP) and :attr:`QuietKernelManager.kernel_log`, where the kernel process's stdout and stderr go instead of the
terminal of whoever started the run. Cell outputs are not affected: they travel over the sockets into the
notebook as always.
"""

from __future__ import annotations

from typing import Any

from jupyter_client.manager import AsyncKernelManager
from traitlets import Unicode

__all__ = ["QuietKernelManager"]


class QuietKernelManager(AsyncKernelManager):
    """An ``AsyncKernelManager`` whose kernel writes its own output to :attr:`kernel_log`."""

    kernel_log = Unicode("", config=True, help="File for the kernel process's stdout and stderr ('' keeps them).")

    async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
        """Launch the kernel (first start and every restart) with its stdout and stderr appended to the log."""
        if not self.kernel_log:
            await super()._async_launch_kernel(kernel_cmd, **kw)
            return
        with open(self.kernel_log, "ab") as log:  # the child gets its own copy of the descriptor
            kw.setdefault("stdout", log)
            kw.setdefault("stderr", log)
            await super()._async_launch_kernel(kernel_cmd, **kw)
